import math

import numpy as np
import pytest
from scipy import stats

from mltricks.lab.stats import Estimate, mean_interval, proportion_interval


def test_mean_interval_is_the_student_t_interval():
    values = [0.71, 0.69, 0.74, 0.70, 0.73]
    estimate = mean_interval(values)
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert estimate.mean == pytest.approx(np.mean(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high))
    assert estimate.std == pytest.approx(np.std(values, ddof=1)) and estimate.n == 5


def test_degenerate_inputs():
    one = mean_interval([3.0])
    assert one.mean == 3.0 and one.low is None and one.high is None and one.n == 1
    assert math.isnan(mean_interval([]).mean)
    # a diverged seed (NaN, inf) is left out of the mean and of n
    assert mean_interval([1.0, math.nan, 3.0, math.inf]) == mean_interval([1.0, 3.0])
    # identical values: an exact, zero-width interval
    constant = mean_interval([0.5] * 4)
    assert constant.low == constant.high == 0.5


def test_proportion_interval_is_wilson():
    # 8 of 10 at 95%: Wilson score interval (0.4902, 0.9433)
    estimate = proportion_interval(8, 10)
    assert estimate.mean == 0.8
    assert (estimate.low, estimate.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # it stays inside [0, 1] at the edges, where the t interval would not
    assert 0.0 <= proportion_interval(0, 10).low and proportion_interval(10, 10).high <= 1.0
    assert proportion_interval(0, 0).n == 0


def test_claim_helpers_compare_the_whole_interval():
    estimate = Estimate(mean=0.5, low=0.2, high=0.8, std=0.1, n=5)
    assert estimate.above(0.1) and not estimate.above(0.3)
    assert estimate.below(0.9) and not estimate.below(0.7)
    assert estimate.contains(0.5) and not estimate.contains(0.9)
    no_interval = Estimate(mean=0.5, low=None, high=None, std=None, n=1)
    assert not (no_interval.above(0) or no_interval.below(1) or no_interval.contains(0.5))


def test_interval_arrays_for_plots():
    from mltricks.lab.stats import interval_arrays

    with_interval = Estimate(mean=0.5, low=0.2, high=0.8, std=0.1, n=5)
    without = Estimate(mean=0.3, low=None, high=None, std=None, n=1)
    means, lows, highs = interval_arrays([with_interval, without])
    assert means.tolist() == [0.5, 0.3]
    assert lows.tolist() == [0.2, 0.3] and highs.tolist() == [0.8, 0.3]  # zero width without one


def test_intervals_stay_in_the_range_the_metric_name_implies():
    from mltricks.lab.stats import in_range, metric_range
    from mltricks.lab.verdicts import summarize_metrics

    assert metric_range("test_accuracy_ce") == (0.0, 1.0)
    assert metric_range("bag_auc_attention_200") == (0.0, 1.0)
    assert metric_range("seconds") == metric_range("epochs_to_target_scratch") == (0.0, None)
    assert metric_range("fgsm_l2_at_cw_success_fixed") == (0.0, None)  # an L2, not a share
    for signed in ("acc_diff_mc10", "accuracy_gain_both", "elbo_final", "perplexity_drop"):
        assert metric_range(signed) is None
    # three accuracies near 1: the t interval's upper end passes 1, the reported one does not
    seeds = [
        {"acc": a, "seconds": s, "acc_gain": g}
        for a, s, g in ((0.99, 0.1, 0.02), (0.90, 3.0, -0.05), (0.999, 0.2, 0.04))
    ]
    summary = summarize_metrics(seeds)
    raw = mean_interval([0.99, 0.90, 0.999])
    assert raw.high > 1 and summary["acc"].high == 1.0 and summary["acc"].clipped
    assert summary["acc"].low == raw.low and summary["acc"].mean == raw.mean
    assert mean_interval([0.1, 3.0, 0.2]).low < 0 and summary["seconds"].low == 0.0
    assert summary["acc_gain"] == mean_interval([0.02, -0.05, 0.04])  # signed: untouched
    inside = mean_interval([0.5, 0.6, 0.55])
    assert in_range(inside, (0.0, 1.0)) is inside  # nothing to cut: not marked


def test_fewer_than_three_seeds_keep_their_values_and_wilson_ends_are_exact():
    two = mean_interval([0.91, 0.93])
    assert two.values == (0.91, 0.93) and str(two) == "0.91, 0.93"
    assert mean_interval([0.5, 0.6, 0.7]).values is None
    assert proportion_interval(1, 2).values == (1.0, 0.0)
    # 0 of 10 is exactly 0 at the low end (rounding once put it at 5.6e-17)
    assert proportion_interval(0, 10).low == 0.0 and proportion_interval(10, 10).high == 1.0
