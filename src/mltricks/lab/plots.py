"""Figure helpers the experiments share: one image without ticks, and means with their 95%
intervals as error bars or bands (from ``stats.Estimate``).

Example:
    >>> import matplotlib.pyplot as plt
    >>> from mltricks.lab.stats import mean_interval
    >>> fig, ax = plt.subplots()
    >>> estimates = column_estimates([[0.5, 0.7], [0.6, 0.9]])
    >>> container = errorbar(ax, [1, 2], estimates, fmt="o")
    >>> plt.close(fig)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from mltricks.lab.stats import Estimate, interval_arrays, mean_interval

__all__ = ["band", "column_estimates", "errorbar", "interval_errors", "show_image"]


def show_image(ax: Any, image: torch.Tensor, **kwargs: Any) -> Any:
    """``ax.imshow`` of one ``(C, H, W)`` image in [0, 1] without ticks: gray for one channel,
    colour for three (the digits and MNIST, CIFAR-10). Keyword arguments go to matplotlib.
    Returns its image."""
    image = image.detach().cpu()
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"image must be (C, H, W) with C in (1, 3); got shape {tuple(image.shape)}"
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if image.shape[0] == 1:
        return ax.imshow(image[0].numpy(), **{"cmap": "gray", "vmin": 0, "vmax": 1, **kwargs})
    return ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), **kwargs)


def column_estimates(rows: Iterable[Sequence[float]]) -> list[Estimate]:
    """Mean and 95% interval of each column of per-seed rows (a per-epoch curve, a per-alpha
    accuracy list): ``rows`` is ``(seeds, points)``, the result one ``Estimate`` per point."""
    rows = [list(row) for row in rows]
    lengths = sorted({len(row) for row in rows})
    if len(lengths) != 1:
        raise ValueError(f"rows must be (seeds, points) of one length; got lengths {lengths}")
    table = np.asarray(rows, dtype=float)
    return [mean_interval(column) for column in table.T]


def interval_errors(estimates: Sequence[Estimate]) -> np.ndarray:
    """``(2, N)`` distances from each mean down to its interval's low end and up to its high
    end: matplotlib's ``yerr``/``xerr``. Zero for an estimate without an interval."""
    means, lows, highs = interval_arrays(estimates)
    return np.stack([means - lows, highs - means])


def errorbar(ax: Any, x: Any, estimates: Sequence[Estimate], **kwargs: Any) -> Any:
    """``ax.errorbar`` of the means at ``x`` with their 95% intervals as error bars; keyword
    arguments go to matplotlib. Returns its container."""
    means, _, _ = interval_arrays(estimates)
    return ax.errorbar(x, means, yerr=interval_errors(estimates), **kwargs)


def band(
    ax: Any,
    x: Any,
    estimates: Sequence[Estimate],
    *,
    clip: tuple[float, float] | None = None,
    **kwargs: Any,
) -> Any:
    """``ax.fill_between`` over the intervals at ``x`` (zero width without an interval);
    ``clip=(low, high)`` keeps the band in a metric's range (a t interval of an accuracy over
    few seeds can leave [0, 1]). Returns matplotlib's collection."""
    _, lows, highs = interval_arrays(estimates)
    if clip is not None:
        lows, highs = np.clip(lows, *clip), np.clip(highs, *clip)
    return ax.fill_between(x, lows, highs, **kwargs)
