"""The README's library example runs as written (on tiny stand-ins for the user's data)."""

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_library_example_in_the_readme_runs():
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (40, 2)), rng.normal(2, 1, (40, 2))])
    y = np.repeat([0, 1], 40)
    y[rng.permutation(80)[:60]] = -1  # unlabeled
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(64, 3)
    )
    x = torch.rand(6, 1, 4, 4)
    # a learnable problem (class k lights up row k), shuffled by a generator of its own: the
    # range test sees the same batches whatever the example draws before it, and the loss
    # falls for the good rates, so some slope is negative
    classes = torch.arange(32) % 3
    images = 0.5 * torch.rand(32, 1, 4, 4)
    images[torch.arange(32), 0, classes] += 0.5
    namespace = {
        "X": X,
        "y": y,
        "X_test": X[:5],
        "model": model,
        "x": x,
        "augment": lambda batch: (batch + 0.05 * torch.randn_like(batch)).clamp(0, 1),
        "embeddings": torch.randn(16, 8),
        "labels": torch.arange(4).repeat(4),
        "train_loader": DataLoader(
            TensorDataset(images, classes),
            batch_size=8,
            shuffle=True,
            generator=torch.Generator().manual_seed(0),
        ),
    }
    code = example.replace("ClusterThenLabel(n_clusters=10", "ClusterThenLabel(n_clusters=2")
    code = code.replace("num_batches=20", "num_batches=4")
    # the estimators take numpy labels with -1 for unlabeled samples; the attack and the
    # explainers take the targets of x
    estimators, rest = code.split("\n# losses with functional twins", 1)
    exec(estimators, namespace)
    namespace["y"] = torch.tensor([0, 1, 2, 0, 1, 2])
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    exec("#" + rest, namespace)
    assert namespace["probs"].shape == (20, 6, 3)
    assert namespace["x_adv"].shape == x.shape and namespace["maps"].shape[0] == 6

    result = namespace["result"]
    lrs = np.asarray(result.lrs)
    assert result.losses.shape == (len(lrs), 4)  # every candidate ran num_batches=4 batches
    # every candidate starts from the same weights on the same first batch
    assert np.isfinite(result.losses[:, 0]).all()
    np.testing.assert_allclose(result.losses[:, 0], result.losses[0, 0], rtol=1e-5)
    # the pick is the steepest negative slope
    assert np.nanmin(result.slopes) < 0
    assert result.best_lr == lrs[np.nanargmin(result.slopes)]
    # the wrappers, the attack, the explainers and the range test leave the weights as found
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name
