"""The labeled-share sweep of the scikit-learn semi-supervised experiments (cluster-then-label,
self-training): both cut one pool of features (``data_sources.PixelFeatures``), label a share
of it, and report the same baselines at each share, so that their numbers line up.

- ``LabeledShareSweep``: their settings (the shares, and the baselines' ``LabelSpreading`` and
  logistic regression).
- ``labeled_shares``: the labeled samples of the pool at each share (``LabeledShare``).
- ``share_baselines``: the metrics both report at a share.
- ``accuracy_vs_labeled_figure``: their test accuracy against the labeled share.

Example:
    >>> y_pool = np.repeat([0, 1], 50)
    >>> shares = labeled_shares(LabeledShareSweep(fractions=(0.1, 0.2)), y_pool, random_state=0)
    >>> [(share.tag, int(share.labeled_mask.sum())) for share in shares]
    [('10pct', 10), ('20pct', 20)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading

from mltricks.data import split_labeled
from mltricks.lab.data_sources import PixelFeatures
from mltricks.lab.plots import errorbar
from mltricks.lab.splits import percent_tag
from mltricks.lab.stats import Estimate
from mltricks.lab.training import label_spreading_accuracy

__all__ = [
    "LabeledShare",
    "LabeledShareSweep",
    "accuracy_vs_labeled_figure",
    "labeled_shares",
    "share_baselines",
]


@dataclass
class LabeledShareSweep(PixelFeatures):
    """The settings of the two scikit-learn experiments (cluster-then-label, self-training):
    the labeled shares of the pool they sweep, and the baselines both report at each share,
    ``LabelSpreading`` (knn kernel, ``spreading_neighbors``) and logistic regression (``C =
    logreg_c``) on the labeled samples alone."""

    fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
    spreading_neighbors: int = 7
    logreg_c: float = 10.0

    def logistic_regression(self, class_weight: str | None = None) -> LogisticRegression:
        """The experiments' logistic regression (also self-training's base estimator)."""
        return LogisticRegression(C=self.logreg_c, class_weight=class_weight, max_iter=1000)


class LabeledShare(NamedTuple):
    """One labeled share of the pool: ``fraction``, its metric-name ``tag`` (``percent_tag``),
    ``labeled_mask`` ``(N,)`` (True for a labeled sample) and ``y_semi`` ``(N,)``, the pool's
    labels with ``-1`` for the unlabeled samples."""

    fraction: float
    tag: str
    labeled_mask: np.ndarray
    y_semi: np.ndarray


def labeled_shares(
    cfg: LabeledShareSweep, y_pool: np.ndarray, *, random_state: int
) -> Iterator[LabeledShare]:
    """The ``LabeledShare`` of the pool at each of ``cfg.fractions``: stratified labeled samples
    (``split_labeled``) chosen by ``random_state``."""
    for fraction in cfg.fractions:
        labeled = split_labeled(y_pool, fraction, random_state=random_state)
        yield LabeledShare(fraction, percent_tag(fraction), labeled, np.where(labeled, y_pool, -1))


def share_baselines(
    cfg: LabeledShareSweep,
    share: LabeledShare,
    X_pool: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """The metrics both experiments report at one labeled share, tagged ``share.tag``:
    ``n_labeled``, the test accuracy of ``LabelSpreading`` on the pool (``acc_label_spreading``)
    and of ``cfg.logistic_regression(class_weight)`` on the labeled samples (``acc_logreg``)."""
    labeled, y_semi = share.labeled_mask, share.y_semi
    spreading = LabelSpreading(kernel="knn", n_neighbors=cfg.spreading_neighbors)
    logreg = cfg.logistic_regression(class_weight).fit(X_pool[labeled], y_semi[labeled])
    return {
        f"n_labeled_{share.tag}": int(labeled.sum()),
        f"acc_label_spreading_{share.tag}": label_spreading_accuracy(
            spreading, X_pool, y_semi, X_test, y_test
        ),
        f"acc_logreg_{share.tag}": logreg.score(X_test, y_test),
    }


def accuracy_vs_labeled_figure(
    fractions: Sequence[float],
    rows: Mapping[str, Sequence[Estimate]],
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Any, Any]:
    """Test accuracy against the labeled share (in percent, log scale): ``rows`` maps a method's
    label to its estimates at each of ``fractions``, drawn as error bars a little apart so that
    they do not hide each other (``styles[label]``: matplotlib keywords of a row). Returns
    ``(figure, axes)`` for the caller's lines, legend and caption."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    percent = np.array(fractions) * 100
    middle = (len(rows) - 1) / 2
    for offset, (label, estimates) in enumerate(rows.items()):
        x = percent * (1 + 0.03 * (offset - middle))
        style = {"marker": "o", "capsize": 3, **(styles or {}).get(label, {})}
        errorbar(ax, x, estimates, label=label, **style)
    ax.set(xscale="log", xlabel="labeled share of the pool (%)", ylabel="test accuracy")
    ax.set_xticks(percent, [f"{p:g}" for p in percent])
    return fig, ax
