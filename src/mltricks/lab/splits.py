"""Data splits the experiments share: the one validation split, a seeded subsample, and the
metric-name tags of labeled shares.

Example:
    >>> labels = np.repeat([0, 1], 10)
    >>> train, val = validation_split(labels, 0.2, random_state=0)
    >>> len(train), len(val), percent_tag(0.02)
    (16, 4, '2pct')
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mltricks._utils.checks import check_number
from mltricks._utils.randomness import torch_generator
from mltricks.data import split_labeled

__all__ = ["check_percent_tags", "labeled_split", "percent_tag", "subsample", "validation_split"]


def validation_split(
    labels: torch.Tensor | np.ndarray,
    fraction: float,
    *,
    random_state: int | None,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training part and a validation part of ``labels``: the one way the lab cuts
    a validation split.

    Stratified (the default): scikit-learn's ``train_test_split`` of the indices, with
    ``ceil(fraction * N)`` validation samples in the classes' proportions, so indexing arrays
    with the result equals ``train_test_split(*arrays, stratify=labels, ...)``. Not stratified:
    a seeded ``torch.randperm`` whose first ``int(fraction * N)`` indices are the validation part
    (the cut the fgsm, carlini-wagner and lr-range-test results were measured with).

    Args:
        labels: class labels ``(N,)``.
        fraction: share of the samples held out, in (0, 1).
        random_state: seed of the cut (an int; None draws a fresh one).
        stratify: keep each class's share in both parts.

    Returns:
        ``(train, val)``: int64 index arrays ``(N - V,)`` and ``(V,)``, in the cut's order.

    Raises:
        ValueError: ``fraction`` outside (0, 1); stratified, a class with a single sample, or
            fewer samples in a part than there are classes (too few samples to stratify).

    Example:
        >>> labels = np.repeat([0, 1], 10)
        >>> train, val = validation_split(labels, 0.2, random_state=0)
        >>> len(train), len(val), np.bincount(labels[val]).tolist()
        (16, 4, [2, 2])
    """
    check_number("fraction", fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (N,); got shape {labels.shape}")
    indices = np.arange(len(labels))
    if stratify:
        _check_stratifiable(labels, fraction)
        train, val = train_test_split(
            indices, test_size=fraction, stratify=labels, random_state=random_state
        )
        return train.astype(np.int64), val.astype(np.int64)
    order = torch.randperm(len(labels), generator=torch_generator(random_state)).numpy()
    num_val = int(fraction * len(labels))
    return order[num_val:], order[:num_val]


def _check_stratifiable(labels: np.ndarray, fraction: float) -> None:
    """scikit-learn's conditions for a stratified cut, said in terms of the samples (its own
    message speaks of "the least populated class" and "groups")."""
    classes, counts = np.unique(labels, return_counts=True)
    num_val = math.ceil(fraction * len(labels))
    if counts.min(initial=2) < 2:
        raise ValueError(
            f"too few samples to stratify a split: class {classes[counts.argmin()]} has "
            f"{counts.min()} of {len(labels)} samples, and each class needs at least 2"
        )
    if min(num_val, len(labels) - num_val) < len(classes):
        raise ValueError(
            f"too few samples to stratify a split: {len(labels)} samples cut at {fraction:g} "
            f"leave {num_val} and {len(labels) - num_val}, and each part needs one of each of "
            f"the {len(classes)} classes"
        )


def subsample(
    images: torch.Tensor, labels: torch.Tensor, size: int, *, random_state: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` samples drawn without replacement (a seeded permutation's first ``size``); all
    of them, in their order, when ``size`` is 0 or not below their number."""
    if size <= 0 or size >= len(labels):
        return images, labels
    keep = torch.randperm(len(labels), generator=torch_generator(random_state))[:size]
    return images[keep], labels[keep]


def percent_tag(fraction: float) -> str:
    """A metric-name tag for a share, its percentage to four significant digits: ``0.02 ->
    "2pct"``, ``0.011 -> "1.1pct"`` (shares that differ get different metric names)."""
    return f"{fraction * 100:.4g}pct"


def check_percent_tags(name: str, fractions: Sequence[float]) -> None:
    """Raise ``ValueError`` naming the field ``name`` when two of ``fractions`` would write the
    same metrics (equal to four significant digits of their percentage)."""
    seen: dict[str, float] = {}
    for fraction in fractions:
        tag = percent_tag(fraction)
        if tag in seen:
            shown = ",".join(f"{f:g}" for f in fractions)
            raise ValueError(
                f"--set {name}={shown}: {seen[tag]:g} and {fraction:g} would both write the "
                f"metrics tagged {tag!r}; give distinct shares"
            )
        seen[tag] = fraction


def labeled_split(
    labels: torch.Tensor | np.ndarray, labeled: int | float, *, random_state: int, setting: str
) -> np.ndarray:
    """``mltricks.data.split_labeled`` for a run: its error names the config ``setting`` that
    chose ``labeled`` (``labeled_per_class``) rather than the function's argument.

    Returns:
        ``labeled_mask``: boolean array ``(N,)``, as ``split_labeled``.

    Example:
        >>> labeled_split(np.array([0, 0, 1]), 2, random_state=0, setting="labeled_per_class")
        Traceback (most recent call last):
        ...
        ValueError: --set labeled_per_class=2: class 1 has 1 image in the training split read; label at most 1 per class, or read more images (max_train)
    """
    if isinstance(labeled, int) and not isinstance(labeled, bool):
        classes, counts = np.unique(np.asarray(labels), return_counts=True)
        if len(counts) and labeled > counts.min():
            smallest = counts.min()
            raise ValueError(
                f"--set {setting}={labeled}: class {classes[counts.argmin()]} has {smallest} "
                f"image{'s' if smallest != 1 else ''} in the training split read; label at most "
                f"{smallest} per class, or read more images (max_train)"
            )
    return split_labeled(labels, labeled, random_state=random_state)
