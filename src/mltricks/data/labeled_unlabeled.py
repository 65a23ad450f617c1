"""Labeled and unlabeled samples side by side: the batches semi-supervised training consumes.

``semi_supervised_loader`` yields batches ``(x_l (B, ...), y_l (B,), x_u (B, r, ...))``: ``B``
labeled samples with their labels and ``B * r`` unlabeled samples, ``r = unlabeled_ratio``. An
epoch is one pass over the unlabeled set (or over the labeled set when it is the larger); the
smaller set is cycled. ``mltricks.semi_supervised.SemiSupervisedStep`` trains on these batches.

Example:
    >>> import torch
    >>> from mltricks.data import semi_supervised_loader
    >>> loader = semi_supervised_loader(
    ...     torch.rand(20, 1, 8, 8), torch.arange(20) % 10, torch.rand(300, 1, 8, 8),
    ...     batch_size=10, unlabeled_ratio=2, random_state=0)
    >>> x_l, y_l, x_u = next(iter(loader))
    >>> x_l.shape, y_l.shape, x_u.shape
    (torch.Size([10, 1, 8, 8]), torch.Size([10]), torch.Size([10, 2, 1, 8, 8]))
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

from mltricks._utils.checks import check_number
from mltricks._utils.randomness import TorchRandomState, torch_generator

__all__ = ["LabeledUnlabeledDataset", "check_class_labels", "semi_supervised_loader"]


def check_class_labels(labels: torch.Tensor, num_classes: int | None, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless every label lies in ``0..num_classes-1``.

    Nothing is checked when ``num_classes`` is None or ``labels`` is empty. The message points
    out that unlabeled samples belong in the unlabeled set, not among the labels as ``-1``.
    """
    if num_classes is None or labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name} must hold class labels in 0..{num_classes - 1}; got values from {low} to "
            f"{high} (unlabeled samples belong in the unlabeled set, not as -1 labels)"
        )


class LabeledUnlabeledDataset(Dataset):
    """Items ``(x_labeled, y_labeled, x_unlabeled)`` with ``unlabeled_ratio`` unlabeled samples.

    Item ``k`` pairs labeled sample ``k mod N_l`` with the unlabeled samples
    ``perm[(k * r + j) mod N_u]``, ``j < r``, for a permutation ``perm`` of the unlabeled set
    drawn once from ``random_state``. The dataset has ``max(N_l, ceil(N_u / r))`` items, so one
    pass sees every unlabeled sample and every labeled one at least once. A shuffling loader
    mixes the items into batches (the ``r`` unlabeled samples of one item stay together, which
    matters only through BatchNorm statistics).

    Args:
        labeled_x: ``(N_l, ...)`` labeled samples.
        labeled_y: ``(N_l,)`` integer class labels.
        unlabeled_x: ``(N_u, ...)`` unlabeled samples, each of the shape of a labeled one.
        unlabeled_ratio: ``r``, unlabeled samples per labeled sample.
        num_classes: when given, labels outside ``0..num_classes-1`` raise ``ValueError``.
        random_state: draws the permutation of the unlabeled set: an int (the same permutation
            every time), a ``torch.Generator`` (advanced), or None (torch's global generator,
            so ``torch.manual_seed`` makes it repeatable).

    Shape:
        - Item: ``x_labeled (...)``, ``y_labeled ()`` (int64), ``x_unlabeled (r, ...)``.
    """

    def __init__(
        self,
        labeled_x: torch.Tensor,
        labeled_y: torch.Tensor,
        unlabeled_x: torch.Tensor,
        *,
        unlabeled_ratio: int = 1,
        num_classes: int | None = None,
        random_state: TorchRandomState = None,
    ) -> None:
        check_number("unlabeled_ratio", unlabeled_ratio, low=1, integer=True)
        for name, value in (("labeled_x", labeled_x), ("unlabeled_x", unlabeled_x)):
            if not isinstance(value, torch.Tensor) or value.dim() < 2:
                raise ValueError(f"{name} must be a tensor (N, ...) of samples; got {value!r:.80}")
        if len(labeled_x) == 0:
            raise ValueError("labeled_x must hold at least one labeled sample; got 0")
        if len(unlabeled_x) == 0:
            raise ValueError(
                "unlabeled_x must hold at least one sample: semi-supervised training needs "
                "unlabeled data; got an empty unlabeled set"
            )
        if labeled_x.shape[1:] != unlabeled_x.shape[1:]:
            raise ValueError(
                "unlabeled_x samples must have the shape of labeled_x samples; got "
                f"{tuple(unlabeled_x.shape[1:])} and {tuple(labeled_x.shape[1:])}"
            )
        labeled_y = torch.as_tensor(labeled_y)
        if labeled_y.shape != (len(labeled_x),) or labeled_y.is_floating_point():
            raise ValueError(
                f"labeled_y must be integer class labels of shape ({len(labeled_x)},); got "
                f"{labeled_y.dtype} of shape {tuple(labeled_y.shape)}"
            )
        check_class_labels(labeled_y, num_classes, "labeled_y")
        self.labeled_x, self.labeled_y, self.unlabeled_x = labeled_x, labeled_y.long(), unlabeled_x
        self.unlabeled_ratio = int(unlabeled_ratio)
        generator = None if random_state is None else torch_generator(random_state)
        self.order = torch.randperm(len(unlabeled_x), generator=generator)
        self.offsets = torch.arange(self.unlabeled_ratio)

    def __len__(self) -> int:
        num_blocks = math.ceil(len(self.unlabeled_x) / self.unlabeled_ratio)
        return max(len(self.labeled_x), num_blocks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index must be in [-{len(self)}, {len(self) - 1}]; got {index}")
        index %= len(self)
        labeled = index % len(self.labeled_x)
        block = (index * self.unlabeled_ratio + self.offsets) % len(self.unlabeled_x)
        return self.labeled_x[labeled], self.labeled_y[labeled], self.unlabeled_x[self.order[block]]


def semi_supervised_loader(
    labeled_x: torch.Tensor,
    labeled_y: torch.Tensor,
    unlabeled_x: torch.Tensor,
    *,
    batch_size: int,
    unlabeled_ratio: int = 1,
    num_classes: int | None = None,
    random_state: TorchRandomState = None,
) -> DataLoader:
    """A shuffling loader of ``(x_l (B, ...), y_l (B,), x_u (B, r, ...))`` batches.

    ``batch_size`` counts labeled samples; each batch also holds ``batch_size * unlabeled_ratio``
    unlabeled samples (see ``LabeledUnlabeledDataset``). The last incomplete batch is dropped
    when there is at least one full batch.

    Args:
        labeled_x: as in ``LabeledUnlabeledDataset``.
        labeled_y: as in ``LabeledUnlabeledDataset``.
        unlabeled_x: as in ``LabeledUnlabeledDataset``.
        unlabeled_ratio: as in ``LabeledUnlabeledDataset``.
        num_classes: as in ``LabeledUnlabeledDataset``.
        batch_size: labeled samples per batch.
        random_state: an int seeds both the unlabeled permutation and the shuffling (each its
            own generator, so the batches do not depend on other randomness); a
            ``torch.Generator`` drives both; None uses torch's global generator.

    Returns:
        A ``DataLoader`` over a ``LabeledUnlabeledDataset``.
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    dataset = LabeledUnlabeledDataset(
        labeled_x,
        labeled_y,
        unlabeled_x,
        unlabeled_ratio=unlabeled_ratio,
        num_classes=num_classes,
        random_state=random_state,
    )
    shuffle = None if random_state is None else torch_generator(random_state)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=shuffle,
        drop_last=len(dataset) >= batch_size,
    )
