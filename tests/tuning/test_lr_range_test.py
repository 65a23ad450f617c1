import math
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


def _scripted(scripts):
    """An optimizer factory and a loss that replay ``scripts[lr]``, one value per batch, for
    whichever candidate is training (the factory is called once per candidate)."""
    state = {"lr": None, "step": 0}

    def make_optimizer(params, lr):
        state.update(lr=lr, step=0)
        return torch.optim.SGD(params, lr=0.0)

    def loss_fn(outputs, targets):
        value = scripts[state["lr"]][state["step"]]
        state["step"] += 1
        return outputs.sum() * 0.0 + value

    return make_optimizer, loss_fn


# a spike far above the start that then recovers has the steepest slope of all three
SPIKE = {
    0.01: [2.0, 1.98, 1.96, 1.94, 1.92, 1.90],
    0.1: [2.0, 1.9, 1.7, 1.5, 1.3, 1.1],
    1.0: [2.0, 30.0, 20.0, 10.0, 5.0, 0.5],
}


def test_a_loss_above_the_threshold_times_its_start_is_a_divergence():
    make_optimizer, loss_fn = _scripted(SPIKE)
    # without the rule the spiking candidate wins on slope: the failure the rule prevents
    blind = lr_range_test(
        _model(),
        loss_fn,
        _problem(),
        lrs=list(SPIKE),
        num_batches=6,
        optimizer=make_optimizer,
        divergence_threshold=None,
    )
    assert blind.best_lr == 1.0 and not blind.diverged.any()

    make_optimizer, loss_fn = _scripted(SPIKE)
    with pytest.warns(UserWarning, match=r"neighbour in the grid, lr 1, diverged"):
        result = lr_range_test(
            _model(),
            loss_fn,
            _problem(),
            lrs=list(SPIKE),
            num_batches=6,
            optimizer=make_optimizer,
            divergence_threshold=4.0,
        )
    assert result.diverged.tolist() == [False, False, True]
    # the candidate stops at the loss that crossed 4 x 2.0; that loss is kept, the rest is NaN
    assert result.losses[2, :2].tolist() == [2.0, 30.0] and np.isnan(result.losses[2, 2:]).all()
    assert np.isnan(result.slopes[2]) and result.pick_frequency[2] == 0
    assert result.best_lr == 0.1 and result.naive_best_lr == 0.1
    # the bootstrap alone calls the pick stable; its diverged neighbour makes it unstable
    assert result.pick_frequency[1] == 1.0 and not result.stable


def test_the_threshold_is_a_multiple_of_the_start_and_the_neighbour_is_in_sorted_order():
    # 7.9 < 4 x 2.0 is not a divergence; 8.1 is. The grid is given unsorted: 0.1's neighbours
    # in lr order are 0.01 and 1.0, and only 10.0 (not a neighbour) diverges in the first case
    scripts = {
        10.0: [2.0, 8.1, 1.0, 1.0, 1.0, 1.0],
        0.1: [2.0, 1.9, 1.7, 1.5, 1.3, 1.1],
        1.0: [2.0, 2.2, 2.4, 2.6, 3.0, 7.9],
        0.01: [2.0, 1.98, 1.96, 1.94, 1.92, 1.90],
    }
    make_optimizer, loss_fn = _scripted(scripts)
    result = lr_range_test(
        _model(), loss_fn, _problem(), lrs=list(scripts), num_batches=6, optimizer=make_optimizer
    )
    assert result.diverged.tolist() == [True, False, False, False]
    assert result.best_lr == 0.1 and result.stable
    make_optimizer, loss_fn = _scripted(scripts)
    with pytest.warns(UserWarning, match="edge of divergence"):
        tighter = lr_range_test(
            _model(),
            loss_fn,
            _problem(),
            lrs=list(scripts),
            num_batches=6,
            optimizer=make_optimizer,
            divergence_threshold=3.0,
        )
    assert tighter.diverged.tolist() == [True, False, True, False]
    assert tighter.best_lr == 0.1 and not tighter.stable


def test_a_non_positive_starting_loss_only_diverges_on_non_finite_values():
    scripts = {0.1: [-1.0, -2.0, -3.0, -4.0], 1.0: [0.0, 5.0, 3.0, 1.0]}
    make_optimizer, loss_fn = _scripted(scripts)
    result = lr_range_test(
        _model(),
        loss_fn,
        _problem(),
        lrs=[0.1, 1.0],
        num_batches=4,
        optimizer=make_optimizer,
        num_bootstrap=0,
    )
    assert not result.diverged.any() and np.isfinite(result.losses).all()


def test_the_issue_repro_no_longer_picks_an_exploding_rate():
    # issue 23: an MLP on the digits with Adam on a grid up to 10**0.5; the 3.16 candidate's
    # loss reached 2890 (start 2.35) and recovered, and it was picked as "stable"
    from mltricks.data import load_digits_images

    images, labels = load_digits_images(split="train")
    images = images.flatten(1)
    data = [(images[i : i + 32], labels[i : i + 32]) for i in range(0, 640, 32)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lr_range_test(
            model,
            F.cross_entropy,
            data,
            lrs=10.0 ** np.arange(-5, 0.75, 0.5),
            optimizer="adam",
            num_batches=20,
        )
    start = result.losses[0, 0]
    assert result.diverged[-1] and result.best_lr is not None and result.best_lr < 3.0
    best = result.best_index
    assert not result.diverged[best] and np.nanmax(result.losses[best]) <= 4.0 * start
    # every candidate that stayed under the threshold ran all its batches
    assert np.isfinite(result.losses[~result.diverged]).all()
    if result.diverged[best + 1]:
        assert not result.stable


@pytest.mark.parametrize(
    ("value", "error"),
    [(1.0, ValueError), (0.5, ValueError), (math.nan, ValueError), ("4", TypeError)],
)
def test_divergence_threshold_must_be_a_multiple_above_one(value, error):
    with pytest.raises(error, match="divergence_threshold must be a number > 1"):
        lr_range_test(
            _model(), F.cross_entropy, _problem(), num_batches=4, divergence_threshold=value
        )
