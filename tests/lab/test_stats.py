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
