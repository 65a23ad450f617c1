"""Semi-supervised targets: integer class labels with ``-1`` for an unlabeled sample.

Shared by ``ClusterThenLabel`` and ``SelfTrainingClassifier``: the check of ``y`` and the
stratified validation split of the labeled samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.utils.multiclass import type_of_target

UNLABELED = -1


@dataclass(frozen=True)
class SemiSupervisedTarget:
    """A checked ``y``.

    Attributes:
        labeled_mask: ``(N,)`` True where the sample has a class label.
        classes: ``(C,)`` sorted class labels (``-1`` excluded), in the dtype of ``y`` (bool
            labels stay bool, as in scikit-learn).
        class_index: ``(N,)`` position of each label in ``classes``; ``-1`` for unlabeled.
        y: ``(N,)`` the labels as given, dtype kept.
    """

    labeled_mask: np.ndarray
    classes: np.ndarray
    class_index: np.ndarray
    y: np.ndarray


def check_semi_supervised_target(y: np.ndarray) -> SemiSupervisedTarget:
    """Check a 1-d ``y`` of integer class labels ``>= 0``, with ``-1`` for unlabeled samples.

    Integer, boolean and integral float labels are accepted and keep their dtype.

    Raises:
        ValueError: labels that are not integers (strings, fractional or continuous values),
            negative labels other than ``-1``, or no labeled sample at all.
    """
    y = np.asarray(y)
    integral = y.dtype.kind in "iub"
    if y.dtype.kind == "f":
        integral = bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))
    elif y.dtype.kind == "O":
        integral = all(isinstance(v, Integral) and not isinstance(v, bool) for v in y.tolist())
    if not integral:
        if y.dtype.kind == "f":
            bad = y[~(np.isfinite(y) & (y == np.round(y)))]
        else:
            bad = y[[not isinstance(v, Integral) for v in y.tolist()]]
        example = bad[0].item() if hasattr(bad[0], "item") else bad[0]
        # scikit-learn's wording for a regression target, which its estimator checks expect
        kind = f" (Unknown label type: {type_of_target(y)})" if y.dtype.kind == "f" else ""
        raise ValueError(
            "y must hold integer class labels, with -1 marking unlabeled samples; got "
            f"{example!r} of dtype {y.dtype}{kind}"
        )
    as_int = y.astype(np.int64)
    negative = np.flatnonzero((as_int < 0) & (as_int != UNLABELED))
    if negative.size:
        values = sorted(set(as_int[negative].tolist()))
        raise ValueError(
            f"y must hold class labels >= 0, with -1 (only) marking unlabeled samples; got "
            f"{values[:5]} at {negative.size} sample(s), first at index {int(negative[0])}"
        )
    labeled_mask = as_int != UNLABELED
    if not labeled_mask.any():
        raise ValueError(
            "y has no labeled sample: every one of its "
            f"{len(y)} labels is -1 (unlabeled); label at least one sample"
        )
    classes, inverse = np.unique(y[labeled_mask], return_inverse=True)
    class_index = np.full(len(y), UNLABELED, dtype=np.int64)
    class_index[labeled_mask] = inverse
    return SemiSupervisedTarget(labeled_mask, classes, class_index, y)


def stratified_validation_split(
    class_index: np.ndarray, validation_fraction: float, rng: np.random.RandomState
) -> np.ndarray:
    """Choose validation samples among labeled ones, stratified, leaving every class one.

    Args:
        class_index: ``(L,)`` class position of each labeled sample, in ``0..C-1``.
        validation_fraction: share of the labeled samples to hold out, in ``[0, 1)``.
        rng: random state of the choice.

    Returns:
        ``(L,)`` boolean mask of the validation samples. At least one sample when
        ``validation_fraction > 0`` and some class has two or more samples; never the last
        training sample of a class, so the model still sees every class.
    """
    num_labeled = len(class_index)
    mask = np.zeros(num_labeled, dtype=bool)
    counts = np.bincount(class_index)
    capacity = np.maximum(counts - 1, 0)  # every class keeps a training sample
    if validation_fraction <= 0 or capacity.sum() == 0:
        return mask
    total = min(max(1, round(validation_fraction * num_labeled)), int(capacity.sum()))
    quota = validation_fraction * counts
    take = np.minimum(np.floor(quota).astype(int), capacity)
    # largest remainders first (random tie-break), where a class still has room
    while take.sum() < total:
        room = np.flatnonzero(take < capacity)
        remainder = quota[room] - take[room] + rng.uniform(0, 1e-9, len(room))
        take[room[np.argmax(remainder)]] += 1
    for cls, count in enumerate(take):
        if count:
            members = np.flatnonzero(class_index == cls)
            mask[rng.choice(members, size=count, replace=False)] = True
    return mask
