"""Means with 95% intervals: the one way the lab summarises repeated measurements."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A mean with its two-sided confidence interval (t distribution over the values)."""

    mean: float
    low: float | None
    high: float | None
    std: float | None
    n: int

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
        if self.low is None or self.high is None:
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


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
    if n < 2:
        return Estimate(mean, None, None, None, 1)
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, std, n)


def proportion_interval(successes: int, total: int, confidence: float = 0.95) -> Estimate:
    """A share with its Wilson score interval (better than t for rates near 0 or 1)."""
    if total <= 0:
        return Estimate(math.nan, None, None, None, 0)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    share = successes / total
    center = (share + z**2 / (2 * total)) / (1 + z**2 / total)
    half = z * math.sqrt(share * (1 - share) / total + z**2 / (4 * total**2)) / (1 + z**2 / total)
    return Estimate(share, center - half, center + half, None, total)
