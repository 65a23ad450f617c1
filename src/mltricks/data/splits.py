"""Labeled / unlabeled splits for semi-supervised learning."""

from __future__ import annotations

import numpy as np
import torch

from mltricks._utils.checks import check_number
from mltricks._utils.randomness import NumpyRandomState, numpy_generator


def split_labeled(
    y: np.ndarray | torch.Tensor | list[int],
    n_labeled: int | float,
    *,
    random_state: NumpyRandomState = None,
) -> np.ndarray:
    """Choose which samples keep their label, stratified by class.

    Args:
        y: class labels ``(N,)``.
        n_labeled: an ``int`` is the number of labeled samples per class; a ``float`` in (0, 1]
            is the labeled share of each class (at least one sample per class).
        random_state: seed of the choice: an int, a numpy ``Generator``/``RandomState`` or None.

    Returns:
        ``labeled_mask``: boolean array ``(N,)``. Use ``np.where(labeled_mask, y, -1)`` for the
        scikit-learn convention where ``-1`` marks an unlabeled sample.

    Example:
        >>> mask = split_labeled([0, 0, 0, 1, 1, 1], 1, random_state=0)
        >>> int(mask.sum())
        2
    """
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y must be a non-empty 1-d array of labels; got shape {y.shape}")
    if isinstance(n_labeled, bool) or not isinstance(n_labeled, int | float | np.number):
        raise TypeError(f"n_labeled must be an int (per class) or a float share; got {n_labeled!r}")
    if isinstance(n_labeled, int | np.integer):
        check_number("n_labeled", n_labeled, low=1, integer=True)
    else:
        check_number("n_labeled", n_labeled, low=0.0, high=1.0, low_inclusive=False)
    rng = numpy_generator(random_state)
    mask = np.zeros(len(y), dtype=bool)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        if isinstance(n_labeled, int | np.integer):
            if n_labeled > len(members):
                raise ValueError(
                    f"n_labeled={n_labeled} per class but class {cls!r} has only "
                    f"{len(members)} samples"
                )
            count = int(n_labeled)
        else:
            count = max(1, round(float(n_labeled) * len(members)))
        mask[rng.choice(members, size=count, replace=False)] = True
    return mask
