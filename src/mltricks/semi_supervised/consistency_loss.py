"""Consistency regularization: a sample and a perturbed copy of it belong to the same class.

The regulariser ``lambda * || f(x) - f(x_augmented) ||_2^2`` on softmax outputs, as in the
Pi-model of Laine and Aila, "Temporal Ensembling for Semi-Supervised Learning", ICLR 2017,
https://arxiv.org/abs/1610.02242 (also Sajjadi et al. 2016, https://arxiv.org/abs/1606.04586).
The weight ``lambda`` is not part of the loss: the caller multiplies (and usually ramps it up).
"""

from __future__ import annotations

import torch
from torch import nn

from mltricks._utils.checks import check_choice
from mltricks.semi_supervised._reduction import REDUCTIONS, reduce_per_sample


def consistency_loss(
    logits: torch.Tensor,
    logits_augmented: torch.Tensor,
    *,
    detach_target: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Squared L2 distance between the softmax outputs of a sample and of its perturbed copy.

    Per sample: ``|| softmax(logits) - softmax(logits_augmented) ||_2^2`` (summed over classes),
    in ``[0, 2]``.

    Args:
        logits: ``(B, C)`` (or ``(..., C)``) scores for the samples ``x``: the target branch.
        logits_augmented: scores of the perturbed samples, same shape and order as ``logits``.
        detach_target: stop gradients through ``logits`` (the target), so only the augmented
            branch is pulled towards the prediction on ``x`` rather than both towards each other.
        reduction: ``"mean"`` (over samples), ``"sum"`` or ``"none"`` (shape ``logits.shape[:-1]``).

    Returns:
        A scalar, or the per-sample losses for ``reduction="none"``.

    Example:
        >>> clean = torch.tensor([[0.0, 0.0]])
        >>> augmented = torch.tensor([[10.0, -10.0]])  # uniform vs almost one-hot: 2 * 0.5^2
        >>> round(float(consistency_loss(clean, augmented)), 4)
        0.5
    """
    check_choice("reduction", reduction, REDUCTIONS)
    for name, value in (("logits", logits), ("logits_augmented", logits_augmented)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a tensor (B, num_classes); got {type(value).__name__}")
        if value.dim() < 1 or value.shape[-1] < 1:
            raise ValueError(
                f"{name} must have shape (..., num_classes); got shape {tuple(value.shape)}"
            )
        if not value.is_floating_point():
            raise TypeError(f"{name} must be floating point; got {value.dtype}")
    if logits.shape != logits_augmented.shape:
        raise ValueError(
            "logits_augmented must have the shape of logits; got "
            f"{tuple(logits_augmented.shape)} and {tuple(logits.shape)}"
        )
    if not isinstance(detach_target, bool):
        raise TypeError(f"detach_target must be a bool; got {detach_target!r}")
    target = logits.detach() if detach_target else logits
    difference = target.softmax(dim=-1) - logits_augmented.softmax(dim=-1)
    per_sample = difference.pow(2).sum(dim=-1)
    return reduce_per_sample(per_sample, reduction)


class ConsistencyLoss(nn.Module):
    """Module twin of :func:`consistency_loss`.

    Example:
        >>> loss = ConsistencyLoss(detach_target=True)
        >>> float(loss(torch.zeros(4, 10), torch.zeros(4, 10)))
        0.0
    """

    def __init__(self, *, detach_target: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        if not isinstance(detach_target, bool):
            raise TypeError(f"detach_target must be a bool; got {detach_target!r}")
        self.detach_target = detach_target
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, logits_augmented: torch.Tensor) -> torch.Tensor:
        return consistency_loss(
            logits, logits_augmented, detach_target=self.detach_target, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"detach_target={self.detach_target}, reduction={self.reduction!r}"
