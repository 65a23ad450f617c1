import random
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.ensembles import MCDropout
from mltricks.ensembles.mc_dropout import CPU_BATCHED_BYTES
from mltricks.models import SmallCNN


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
        samples = MCDropout(model, 4000, random_state=0)(x)
    error = (samples.mean(0) - standard).abs().max()
    spread = samples.std(0).max() / 4000**0.5
    assert error < 5 * spread
    assert not model.training  # the standard-dropout baseline is still deterministic afterwards
    assert torch.equal(model(x), standard)


def test_batched_and_looped_sample_the_same_distribution():
    model = nn.Sequential(nn.Linear(5, 32), nn.Dropout(0.5), nn.Linear(32, 3))
    x = torch.randn(3, 5)
    with torch.no_grad():
        batched = MCDropout(model, 1500, batched=True, random_state=0)(x)
        looped = MCDropout(model, 1500, batched=False, random_state=1)(x)
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
    first = MCDropout(model, 5, random_state=7)(x)
    second = MCDropout(model, 5, random_state=7)(x)
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected)
    assert not torch.equal(MCDropout(model, 5, random_state=8)(x), first)
    unseeded = MCDropout(model, 5)
    assert not torch.equal(unseeded(x), unseeded(x))
    # a generator: each call draws its seed from it, so calls differ and the sequence repeats
    mc = MCDropout(model, 5, random_state=torch.Generator().manual_seed(3))
    calls = [mc(x) for _ in range(2)]
    assert not torch.equal(calls[0], calls[1])
    again = MCDropout(model, 5, random_state=torch.Generator().manual_seed(3))
    assert all(torch.equal(call, again(x)) for call in calls)
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated; use 'random_state'"):
        old = MCDropout(model, 5, seed=7)
    assert torch.equal(old(x), first)


def _distinct_samples(mc, x):
    """Two calls under no_grad: every sample of both calls differs from every other one."""
    with torch.no_grad():
        samples = torch.cat([mc(x), mc(x)])
    flat = samples.flatten(1)
    return len(flat), len(torch.unique(flat, dim=0))


@pytest.mark.parametrize("batched", [True, False])
def test_transformer_layers_attention_and_rnns_draw_new_samples_on_every_call(batched):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.3, batch_first=True)
    # in eval mode under no_grad this layer takes its fused fast path, which skips dropout
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        assert torch.equal(layer.eval()(x), layer(x))
    assert _distinct_samples(MCDropout(layer, 4, batched=batched), x) == (8, 8)
    encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    assert _distinct_samples(MCDropout(encoder, 4, batched=batched), x) == (8, 8)
    assert not any(m.training for m in encoder.modules())  # modes restored

    class Attention(nn.Module):  # attention dropout only: nn.MultiheadAttention's own
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(16, 2, dropout=0.5, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=True)[0]

    assert _distinct_samples(MCDropout(Attention().eval(), 4, batched=batched), x) == (8, 8)

    class Recurrent(nn.Module):  # dropout between the layers of the fused LSTM only
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(16, 8, num_layers=2, dropout=0.5, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    assert _distinct_samples(MCDropout(Recurrent().eval(), 4, batched=batched), x) == (8, 8)
    with pytest.raises(ValueError, match="p=0"):
        MCDropout(nn.LSTM(16, 8, num_layers=2, dropout=0.0))


def test_the_default_mode_follows_the_size_of_the_batched_pass():
    model = nn.Sequential(nn.Linear(8, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 3))
    mc = MCDropout(model, 16, random_state=0)
    largest = 1024 * 4  # bytes of one sample's largest module output (the hidden layer)
    small = torch.randn(4, 8)  # 16 * 4 * 4 KiB = 256 KiB
    large = torch.randn(CPU_BATCHED_BYTES // (16 * largest) + 1, 8)
    assert mc.uses_batched(small) and not mc.uses_batched(large)
    assert mc._footprints == {((8,), torch.float32): largest}
    assert MCDropout(model, 16, batched=False).uses_batched(small) is False
    assert MCDropout(model, 16, batched=True).uses_batched(large) is True
    # the one measuring pass leaves the random state alone: seeded samples do not change
    fresh = MCDropout(model, 16, random_state=0)
    with torch.no_grad():
        first = fresh(small)
        assert torch.equal(fresh(small), first)
        assert torch.equal(MCDropout(model, 16, batched=True, random_state=0)(small), first)


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
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        MCDropout(lambda x: x)


def test_dropout_that_pytorch_ignores_is_named():
    # issue 23: a one-layer LSTM ignores dropout= (it acts between stacked layers only), so
    # every sample was identical and nothing said so
    with pytest.warns(UserWarning, match="non-zero dropout"):  # PyTorch's own, at construction
        lstm = nn.LSTM(8, 8, num_layers=1, dropout=0.5)
    with pytest.raises(ValueError, match=r"the model \(LSTM\) has dropout=0\.5 with num_layers=1"):
        MCDropout(lstm)

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.rnn = nn.GRU(8, 8, num_layers=1, dropout=0.3, batch_first=True)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(self.rnn(x)[0])

    # with another dropout module the samples still differ: a warning naming the RNN
    with pytest.warns(UserWarning, match=r"rnn \(GRU\) has dropout=0\.3 with num_layers=1"):
        mc = MCDropout(Tagger(), 4)
    assert mc.dropout_names == ("rnn", "drop")
    assert _distinct_samples(mc, torch.randn(2, 3, 8)) == (8, 8)


class _FixedBatch(nn.Module):
    """A model tied to its batch size, as a model with a fixed-size state or reshape is."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))

    def forward(self, x):
        assert x.shape[0] == self.batch_size, f"batch size {x.shape[0]} != {self.batch_size}"
        return self.net(x)


def test_the_automatic_mode_works_for_a_model_tied_to_its_batch_size():
    # issue 23: choosing the mode ran the model on x[:1] first, so a model that only accepts
    # its own batch size failed where the looped mode works
    torch.manual_seed(0)
    model = _FixedBatch(4)
    x = torch.randn(4, 5)
    looped = MCDropout(model, 6, batched=False, random_state=0)(x)
    auto = MCDropout(model, 6, random_state=0)
    samples = auto(x)  # small enough for the batched pass, which fails: the loop takes over
    assert torch.equal(samples, looped)
    assert not auto.uses_batched(x) and torch.equal(auto(x), looped)
    with pytest.raises(AssertionError, match="batch size 24 != 4"):  # forcing it still fails
        MCDropout(model, 6, batched=True)(x)
    # unseeded, the fallback starts from the random state the failed pass began with
    torch.manual_seed(5)
    expected = MCDropout(model, 6, batched=False)(x)
    torch.manual_seed(5)
    assert torch.equal(MCDropout(model, 6)(x), expected)
    assert all(not m._forward_hooks for m in model.modules())
