import random
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.tuning import default_lrs, lr_range_test


def _problem(seed=0, num_batches=8, batch=32):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(5, 3, generator=generator)
    batches = []
    for _ in range(num_batches):
        x = torch.randn(batch, 5, generator=generator)
        batches.append((x, (x @ weights).argmax(1)))
    return batches


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3)
    )


def test_losses_slopes_and_picks_follow_their_definitions():
    batches = _problem()
    lrs = [1e-4, 1e-2, 1e-1, 1.0]
    result = lr_range_test(_model(), F.cross_entropy, batches, lrs=lrs, num_batches=8)
    assert result.losses.shape == (4, 8) and np.isfinite(result.losses).all()
    steps = np.arange(8)
    for i in range(4):
        slope = np.polyfit(steps, result.losses[i], 1)[0]
        assert result.slopes[i] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    negative = np.where(result.slopes < 0, result.slopes, np.inf)
    assert result.best_lr == lrs[int(np.argmin(negative))]
    drops = result.losses[:, 0] - result.losses[:, -1]
    assert result.naive_best_lr == lrs[int(np.argmax(drops))]
    # the first batch is seen by every candidate from the same weights: same first loss
    assert np.allclose(result.losses[:, 0], result.losses[0, 0])


def test_bootstrap_frequencies_and_intervals_equal_a_loop_over_the_resamples():
    batches = _problem(num_batches=8)
    lrs = [1e-3, 3e-2, 1e-1, 0.3, 1.0]
    result = lr_range_test(
        _model(), F.cross_entropy, batches, lrs=lrs, num_batches=8, random_state=3
    )
    # the same resamples, drawn as documented: one index vector per resample, shared by all lrs
    rng = np.random.default_rng(3)
    index = rng.integers(0, 8, size=(200, 8))
    wins = np.zeros(len(lrs))
    slopes = np.empty((len(lrs), 200))
    for r, rows in enumerate(index):
        for i in range(len(lrs)):
            x, y = rows.astype(float), result.losses[i, rows]
            slopes[i, r] = np.nan if np.ptp(x) == 0 else np.polyfit(x, y, 1)[0]
        negative = [(slopes[i, r], i) for i in range(len(lrs)) if slopes[i, r] < 0]
        if negative:
            wins[min(negative)[1]] += 1
    np.testing.assert_allclose(result.pick_frequency, wins / 200)
    expected = np.nanpercentile(slopes, [2.5, 97.5], axis=1).T
    np.testing.assert_allclose(result.slope_intervals, expected, rtol=1e-7, atol=1e-10)
    best = result.best_index
    assert result.stable == (result.pick_frequency[best] >= 0.9)
    # a generator is used as is: the same draws as its seed
    again = lr_range_test(
        _model(),
        F.cross_entropy,
        batches,
        lrs=lrs,
        num_batches=8,
        random_state=np.random.default_rng(3),
    )
    np.testing.assert_array_equal(again.pick_frequency, result.pick_frequency)


def test_every_candidate_sees_the_same_batches_from_a_one_shot_iterator():
    seen = []

    def loss_fn(outputs, targets):
        seen.append(targets.clone())
        return F.cross_entropy(outputs, targets)

    batches = iter(_problem(num_batches=12))  # a generator-like source is read once
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bootstrap: no stability warning either
        result = lr_range_test(
            _model(), loss_fn, batches, lrs=[1e-3, 1e-2, 1e-1], num_batches=5, num_bootstrap=0
        )
    assert not result.stable and "stability not measured" in result.message
    assert len(seen) == 15
    for candidate in range(1, 3):
        for step in range(5):
            assert torch.equal(seen[candidate * 5 + step], seen[step])


def test_model_and_random_state_come_back_unchanged():
    model = _model(dropout=0.3)
    model.eval()
    model[1].train()  # a mixed mode must be restored module by module
    model[0].weight.requires_grad_(False)
    model[4].weight.grad = torch.full_like(model[4].weight, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    lr_range_test(model, F.cross_entropy, _problem(), lrs=[1e-2, 10.0], num_batches=6)
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], after[0]) and np.array_equal(expected[1], after[1])
    assert expected[2] == after[2]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert [m.training for m in model.modules()] == modes
    assert not model[0].weight.requires_grad and model[0].weight.grad is None
    assert torch.equal(model[4].weight.grad, torch.full_like(model[4].weight, 0.5))
    assert model[4].bias.grad is None


def test_dropout_masks_are_the_same_for_every_candidate():
    # with negligible learning rates the weights do not move, so equal random state
    # gives equal losses; different masks would make them differ
    result = lr_range_test(
        _model(dropout=0.5),
        F.cross_entropy,
        _problem(),
        lrs=[1e-12, 2e-12, 3e-12],
        num_batches=6,
        num_bootstrap=0,
    )
    assert np.allclose(result.losses, result.losses[0], atol=1e-6)


def test_diverged_candidates_are_recorded_and_never_picked():
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(5, 3)

        def forward(self, x):
            return self.linear(x)

    def loss_fn(outputs, targets):
        loss = F.cross_entropy(outputs, targets)
        # huge steps make the loss overflow to inf: a divergence
        return loss * torch.exp(outputs.abs().max())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lr_range_test(Exploding(), loss_fn, _problem(), lrs=[1e-3, 1e6], num_batches=8)
    assert result.diverged.tolist() == [False, True]
    assert np.isnan(result.losses[1]).any() and np.isnan(result.slopes[1])
    assert result.best_lr != 1e6 and result.naive_best_lr != 1e6


def test_no_negative_slope_gives_no_pick():
    calls = {"n": 0}

    def rising(outputs, targets):
        calls["n"] += 1
        return outputs.sum() * 0.0 + (calls["n"] - 1) % 5  # 0, 1, 2, 3, 4 for every candidate

    result = lr_range_test(
        _model(), rising, _problem(), lrs=[0.1, 0.2], num_batches=5, num_bootstrap=10
    )
    assert result.best_lr is None and result.naive_best_lr is None
    assert "no negative slope" in result.message and not result.stable


def test_stability_under_resampling():
    batches = _problem(num_batches=20)
    result = lr_range_test(_model(), F.cross_entropy, batches, lrs=[1e-4, 0.1], num_batches=20)
    # a steady descent against a flat line: the pick never changes under resampling
    assert result.best_lr == 0.1 and result.stable
    assert result.pick_frequency[1] == pytest.approx(1.0)


def test_default_grid():
    lrs = default_lrs()
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0) and len(lrs) == 13


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lrs": []}, "lrs"),
        ({"lrs": [0.1, 0.0]}, "lrs"),
        ({"lrs": [-1.0]}, "lrs"),
        ({"lrs": [float("nan")]}, "lrs"),
        ({"num_batches": 1}, "num_batches"),
        ({"num_batches": 50}, "num_batches"),
        ({"optimizer": "lion"}, "optimizer"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lr_range_test(_model(), F.cross_entropy, _problem(), **{"num_batches": 4, **kwargs})
