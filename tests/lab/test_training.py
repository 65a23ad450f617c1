"""The lab's training recipes: the small CNN's validation score, BatchNorm statistics against a
brute-force pass, the label-spreading baseline, and a diverging run that names its setting."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.semi_supervised import LabelSpreading

from mltricks.lab import engine
from mltricks.lab.data_sources import digit_features
from mltricks.lab.splits import validation_split
from mltricks.lab.training import (
    BatchNormRecalibration,
    SmallCNNTraining,
    label_spreading_accuracy,
    names_learning_rates,
    recalibrate_batch_norm,
    train_small_cnn,
)
from mltricks.models import SmallCNN


def test_train_small_cnn_reports_the_accuracy_of_its_validation_split():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.rand(200, 1, 8, 8, generator=generator) * 0.3 + 0.6 * labels[:, None, None, None]
    torch.manual_seed(0)
    settings = SmallCNNTraining(width=4, epochs=5, batch_size=16, lr=3e-3, val_fraction=0.25)
    model, training = train_small_cnn(images, labels, settings, random_state=2, num_classes=2)
    assert isinstance(model, SmallCNN) and not model.training
    _, val = validation_split(labels, 0.25, random_state=2, stratify=False)
    loader = engine.make_loader(images[val], labels[val], batch_size=256)
    assert training["val_accuracy"] == pytest.approx(engine.evaluate(model, loader)["accuracy"])
    assert training["val_accuracy"] > 0.9  # the classes differ by brightness


def test_recalibrated_batch_norm_holds_the_exact_statistics_of_the_images():
    torch.manual_seed(0)
    model = SmallCNN(1, 3, width=4, dropout=0.5)
    images = torch.rand(70, 1, 8, 8) * 2 + 1  # far from the initial running statistics (0, 1)
    model.eval()
    recalibrate_batch_norm(model, images, batch_size=16)  # 5 batches, the last short
    assert not model.training  # the mode it came in
    first = model.features[1]
    with torch.no_grad():  # brute force: the first BatchNorm's input, batch by batch
        inputs = [model.features[0](batch) for batch in images.split(16)]
    mean = torch.stack([x.mean((0, 2, 3)) for x in inputs]).mean(0)
    var = torch.stack([x.var((0, 2, 3), unbiased=True) for x in inputs]).mean(0)
    assert torch.allclose(first.running_mean, mean, atol=1e-5)
    assert torch.allclose(first.running_var, var, rtol=1e-4)
    assert first.momentum == 0.1  # restored after the cumulative pass


def test_train_small_cnn_measures_validation_after_recalibration():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 2
    images = torch.rand(120, 1, 8, 8, generator=generator) * 0.3 + 0.6 * labels[:, None, None, None]
    torch.manual_seed(0)
    settings = SmallCNNTraining(
        width=4, epochs=2, batch_size=16, lr=3e-3, val_fraction=0.25, recalibrate_bn=True
    )
    model, training = train_small_cnn(images, labels, settings, random_state=2, num_classes=2)
    train, val = validation_split(labels, 0.25, random_state=2, stratify=False)
    reference = SmallCNN(1, 2, width=4)
    reference.load_state_dict(model.state_dict())
    recalibrate_batch_norm(reference, images[train])  # idempotent on the same images
    for key, value in model.state_dict().items():
        assert torch.allclose(value.float(), reference.state_dict()[key].float(), atol=1e-6), key
    loader = engine.make_loader(images[val], labels[val], batch_size=256)
    assert training["val_accuracy"] == pytest.approx(engine.evaluate(model, loader)["accuracy"])


def test_label_spreading_accuracy_is_its_score_without_the_warning():
    X_pool, y_pool, _, _, X_test, y_test = digit_features(holdout_fraction=0.2, random_state=0)
    y_semi = np.where(np.arange(len(y_pool)) % 10 == 0, y_pool, -1)
    spreading = LabelSpreading(kernel="knn", n_neighbors=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        accuracy = label_spreading_accuracy(spreading, X_pool, y_semi, X_test, y_test)
    expected = LabelSpreading(kernel="knn", n_neighbors=3).fit(X_pool, y_semi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert accuracy == expected.score(X_test, y_test)


def test_a_diverging_run_names_its_learning_rate_settings():
    @names_learning_rates
    def run(cfg, ctx):
        engine.fit(
            torch.nn.Linear(2, 2),
            engine.make_loader(torch.ones(4, 2), torch.zeros(4, dtype=torch.long), batch_size=2),
            torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr),
            step_fn=lambda model, batch: torch.tensor(float("nan")),
            desc="demo",
        )

    cfg = SimpleNamespace(lr=1e10, ae_lr=0.002, epochs=3, weight_decay=0.1)
    with pytest.raises(FloatingPointError) as caught:
        run(cfg, None)
    message = str(caught.value)
    assert "demo: the training loss became nan" in message and "\n" not in message
    assert message.endswith("(learning rate set by --set lr=1e+10 --set ae_lr=0.002)")


def test_batch_norm_is_recalibrated_with_data_only():
    from mltricks.lab.config_fields import DATA_DEFAULT_KEY

    (field,) = BatchNormRecalibration.__dataclass_fields__.values()
    assert BatchNormRecalibration().recalibrate_bn is False  # the digits' numbers stay
    assert field.metadata[DATA_DEFAULT_KEY] is True
