"""Means with 95% intervals: the one way the lab summarises repeated measurements.

Intervals stay honest: a metric's interval never leaves the range its values can take (an
accuracy's stays in [0, 1], a duration's or a loss's above 0: ``metric_range`` reads the range
from the metric's name, and ``in_range`` clips to it, marking the estimate ``clipped``), a share
of successes gets Wilson's interval, and with fewer than ``MIN_SEEDS_FOR_INTERVAL`` values the
values themselves are kept (``Estimate.values``) and shown instead of an interval.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

# below this many values a 95% interval says little (t with one degree of freedom is 12.7):
# reports show the values instead
MIN_SEEDS_FOR_INTERVAL = 3

# a metric's range, read from its name (first group that matches wins): differences, gains and
# scores that can be negative first, then quantities that cannot be negative (durations, counts,
# losses, norms, ratios), then shares and scores in [0, 1]
_SIGNED = re.compile(
    r"(^|_)(diff|gain|gains|drop|delta|change|rise|gap|elbo|slope|importance|permutation)"
    r"(_|$)"
)
_NON_NEGATIVE = re.compile(
    r"(^|_)(seconds|duration|time|count|num|size|epochs|epoch|steps|rounds|l2|loss|nll|mse|"
    r"perplexity|ratio|norm|distance|deviation|error|spread|lr|fp|cpu|s)(_|$)"
)
_UNIT = re.compile(
    r"(^|_)(acc|accuracy|auc|iou|miou|map|f1|precision|recall|share|rate|success|prob|"
    r"probability|within|exact|chance|ece|monotone|positive|fooled|reaches|loaded|coverage)(_|$)"
)


def metric_range(name: str) -> tuple[float, float | None] | None:
    """The range a metric's values can take, from its name: ``(0, 1)`` for accuracies, AUCs,
    IoUs, shares and rates; ``(0, None)`` for durations, counts, losses, norms and ratios; None
    for differences, gains and anything else (no bound assumed).

    Example:
        >>> metric_range("test_accuracy_ce"), metric_range("seconds"), metric_range("acc_diff")
        ((0.0, 1.0), (0.0, None), None)
    """
    if _SIGNED.search(name):
        return None
    if _NON_NEGATIVE.search(name):
        return (0.0, None)
    if _UNIT.search(name):
        return (0.0, 1.0)
    return None


@dataclass(frozen=True)
class Estimate:
    """A mean with its two-sided confidence interval (t distribution over the values, or
    Wilson's for a share of successes).

    ``values`` holds the values themselves when there are fewer than
    ``MIN_SEEDS_FOR_INTERVAL``; ``clipped`` says the interval was cut to the metric's range.
    """

    mean: float
    low: float | None
    high: float | None
    std: float | None
    n: int
    values: tuple[float, ...] | None = None
    clipped: bool = False

    def above(self, value: float) -> bool:
        """Whether the whole interval lies above ``value`` (false without an interval)."""
        return self.low is not None and self.low > value

    def below(self, value: float) -> bool:
        """Whether the whole interval lies below ``value`` (false without an interval)."""
        return self.high is not None and self.high < value

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (false without an interval)."""
        return self.low is not None and self.high is not None and self.low <= value <= self.high

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def __str__(self) -> str:
        if self.values is not None and self.n < MIN_SEEDS_FOR_INTERVAL:
            return ", ".join(f"{v:.4g}" for v in self.values)
        if self.low is None or self.high is None:
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def in_range(estimate: Estimate, bounds: tuple[float, float | None] | None) -> Estimate:
    """``estimate`` with its interval clipped to ``bounds`` (``(low, high)``, None: open),
    marked ``clipped`` when that moved an end; unchanged without bounds or interval."""
    if bounds is None or estimate.low is None or estimate.high is None:
        return estimate
    low_bound, high_bound = bounds
    low = max(estimate.low, low_bound)
    high = estimate.high if high_bound is None else min(estimate.high, high_bound)
    if (low, high) == (estimate.low, estimate.high):
        return estimate
    return dataclasses.replace(estimate, low=low, high=high, clipped=True)


def interval_arrays(
    estimates: Sequence[Estimate],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, lows and highs of ``estimates`` as arrays, for error bars and bands; an estimate
    without an interval (fewer than two values) gets a zero-width one at its mean."""
    means = np.array([e.mean for e in estimates], dtype=float)
    lows = np.array([e.mean if e.low is None else e.low for e in estimates], dtype=float)
    highs = np.array([e.mean if e.high is None else e.high for e in estimates], dtype=float)
    return means, lows, highs


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> Estimate:
    """Mean of ``values`` with a ``confidence`` interval from Student's t; none for n < 2.

    Non-finite values are ignored (a diverged seed does not poison the mean), and counted out
    of ``n``.
    """
    array = np.asarray([float(v) for v in values], dtype=float)
    array = array[np.isfinite(array)]
    n = len(array)
    if n == 0:
        return Estimate(math.nan, None, None, None, 0)
    mean = float(array.mean())
    shown = tuple(float(v) for v in array) if n < MIN_SEEDS_FOR_INTERVAL else None
    if n < 2:
        return Estimate(mean, None, None, None, 1, shown)
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, std, n, shown)


def proportion_interval(successes: int, total: int, confidence: float = 0.95) -> Estimate:
    """A share with its Wilson score interval (better than t for rates near 0 or 1)."""
    if total <= 0:
        return Estimate(math.nan, None, None, None, 0)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    share = successes / total
    center = (share + z**2 / (2 * total)) / (1 + z**2 / total)
    half = z * math.sqrt(share * (1 - share) / total + z**2 / (4 * total**2)) / (1 + z**2 / total)
    values = None
    if total < MIN_SEEDS_FOR_INTERVAL:
        values = (1.0,) * successes + (0.0,) * (total - successes)
    # Wilson's interval reaches 0 with no success and 1 with no failure, exactly: rounding must
    # not leave them 1e-17 away (or outside)
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == total else min(1.0, center + half)
    return Estimate(share, low, high, None, total, values)
