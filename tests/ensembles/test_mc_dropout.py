import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smallml.ensembles import MCDropout
from smallml.models import SmallCNN


def _tabular(p=0.5):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 3)
    )


@pytest.mark.parametrize("batched", [True, False])
def test_shapes_for_tabular_and_image_inputs(batched):
    mc = MCDropout(_tabular(), 7, batched=batched)
    assert mc(torch.rand(4, 5)).shape == (7, 4, 3)
    mc = MCDropout(SmallCNN(3, 10, width=4, dropout=0.3), 6, batched=batched)
    assert mc(torch.rand(2, 3, 8, 8)).shape == (6, 2, 10)
    # any output shape, e.g. per-pixel logits
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Dropout2d(0.5), nn.Conv2d(4, 2, 1))
    assert MCDropout(conv, 3, batched=batched)(torch.rand(5, 1, 6, 6)).shape == (3, 5, 2, 6, 6)


@pytest.mark.parametrize("batched", [True, False])
def test_only_dropout_is_stochastic_and_batchnorm_statistics_do_not_change(batched):
    model = _tabular()
    model.train()  # the model comes in train mode: the wrapper must still use BN running stats
    model(torch.randn(64, 5))  # non-trivial running statistics
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    modes = []
    handle = model[1].register_forward_hook(lambda m, a, o: modes.append(m.training))
    samples = MCDropout(model, 10, batched=batched)(torch.randn(8, 5))
    handle.remove()
    assert modes and not any(modes)  # BatchNorm ran in eval mode
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    assert model.training and model[3].training and model[1].training  # modes restored
    assert (samples.std(0) > 0).any()  # samples differ


def test_sample_mean_estimates_standard_dropout():
    """Inverted dropout: the MC mean of a linear model equals the deterministic eval pass."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 32), nn.Dropout(0.5), nn.Linear(32, 3)).eval()
    x = torch.randn(4, 5)
    with torch.no_grad():
        standard = model(x)
        samples = MCDropout(model, 4000, seed=0)(x)
    error = (samples.mean(0) - standard).abs().max()
    spread = samples.std(0).max() / 4000**0.5
    assert error < 5 * spread
    assert not model.training  # the standard-dropout baseline is still deterministic afterwards
    assert torch.equal(model(x), standard)


def test_batched_and_looped_sample_the_same_distribution():
    model = nn.Sequential(nn.Linear(5, 32), nn.Dropout(0.5), nn.Linear(32, 3))
    x = torch.randn(3, 5)
    with torch.no_grad():
        batched = MCDropout(model, 1500, seed=0)(x)
        looped = MCDropout(model, 1500, batched=False, seed=1)(x)
    assert torch.allclose(batched.mean(0), looped.mean(0), atol=0.08)
    assert torch.allclose(batched.std(0), looped.std(0), rtol=0.1)


def test_seeded_sampling_is_reproducible_and_leaves_the_global_generator_alone():
    model = _tabular()
    x = torch.randn(4, 5)
    torch.manual_seed(123)
    np.random.seed(1)
    random.seed(2)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = MCDropout(model, 5, seed=7)(x)
    second = MCDropout(model, 5, seed=7)(x)
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected)
    assert not torch.equal(MCDropout(model, 5, seed=8)(x), first)
    unseeded = MCDropout(model, 5)
    assert not torch.equal(unseeded(x), unseeded(x))


def test_a_model_without_dropout_modules_is_refused():
    with pytest.raises(ValueError, match="model Sequential has no dropout module"):
        MCDropout(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="p=0"):
        MCDropout(SmallCNN(1, 10, width=4, dropout=0.0))


def test_functional_dropout_is_named():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            return F.dropout(self.linear(x), 0.3, self.training)

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(Inner())
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(self.block(x))

    model = Outer()
    with pytest.raises(ValueError, match=r"block\.0 \(Inner\) calls torch\.nn\.functional"):
        MCDropout(model, 3)(torch.rand(2, 4))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.training


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1; got 0"):
        MCDropout(_tabular(), 0)
    with pytest.raises(TypeError, match="batched"):
        MCDropout(_tabular(), 3, batched="yes")
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        MCDropout(lambda x: x)
