"""Transformation/stability loss: predictions of stochastic views of one sample should agree.

Sajjadi, Javanmardi and Tasdizen, "Regularization With Stochastic Transformations and
Perturbations for Deep Semi-Supervised Learning", NeurIPS 2016, https://arxiv.org/abs/1606.04586.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mltricks._utils.checks import check_choice
from mltricks.semi_supervised._reduction import REDUCTIONS, reduce_per_sample


def stability_loss(
    logits_per_view: torch.Tensor | Sequence[torch.Tensor], *, reduction: str = "mean"
) -> torch.Tensor:
    """Sum over view pairs of the squared L2 distance between softmax predictions.

    With ``p_j = softmax(f(T_j(x)))`` the prediction for the ``j``-th of ``n`` stochastic views
    (random augmentation, dropout, ...) of a sample ``x``, the paper's per-sample loss is

        l_TS(x) = sum_{j < k} || p_j - p_k ||_2^2  =  n * sum_j || p_j - mean_j p_j ||_2^2,

    computed with the right-hand form (one pass over the views, exactly 0 when they agree). The
    paper sums over samples; ``reduction="mean"`` averages over them so the weight of the loss
    does not depend on the batch size. The scale grows with the number of pairs,
    ``n (n - 1) / 2``: retune its weight when ``n`` changes. The loss alone is minimised by a
    constant prediction; the mutual-exclusivity loss is the paper's remedy.

    Args:
        logits_per_view: ``(n, B, C)`` tensor or a sequence of ``n >= 2`` tensors ``(B, C)``:
            unnormalised scores of the ``n`` views of the same ``B`` samples, in the same order.
        reduction: ``"mean"`` (over samples), ``"sum"`` or ``"none"`` (per sample, ``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    Example:
        >>> views = torch.tensor([[[2.0, 0.0]], [[2.0, 0.0]], [[0.0, 2.0]]])  # n=3, B=1, C=2
        >>> round(float(stability_loss(views)), 4)
        2.3201
    """
    check_choice("reduction", reduction, REDUCTIONS)
    views = _stack_views(logits_per_view)
    probabilities = views.softmax(dim=-1)  # (n, B, C)
    centred = probabilities - probabilities.mean(dim=0, keepdim=True)
    per_sample = views.shape[0] * centred.pow(2).sum(dim=(0, 2))  # (B,)
    return reduce_per_sample(per_sample, reduction)


def _stack_views(logits_per_view: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """``(n, B, C)`` from a tensor or a sequence of ``(B, C)`` tensors, with clear errors."""
    if isinstance(logits_per_view, torch.Tensor):
        if logits_per_view.dim() != 3:
            raise ValueError(
                "logits_per_view must be a tensor (n_views, B, num_classes) or a sequence of "
                f"(B, num_classes) tensors; got a tensor of shape {tuple(logits_per_view.shape)}"
            )
        views = logits_per_view
    else:
        if not isinstance(logits_per_view, Sequence) or not all(
            isinstance(v, torch.Tensor) for v in logits_per_view
        ):
            raise TypeError(
                "logits_per_view must be a tensor (n_views, B, num_classes) or a sequence of "
                f"tensors; got {type(logits_per_view).__name__}"
            )
        shapes = [tuple(v.shape) for v in logits_per_view]
        if any(len(s) != 2 for s in shapes) or len(set(shapes)) > 1:
            raise ValueError(
                "logits_per_view must hold views of one shape (B, num_classes); got shapes "
                f"{shapes}"
            )
        views = torch.stack(list(logits_per_view)) if logits_per_view else torch.empty(0, 0, 0)
    if views.shape[0] < 2:
        raise ValueError(
            f"logits_per_view must hold at least 2 views of each sample; got {views.shape[0]}"
        )
    if views.shape[-1] < 1:
        raise ValueError("logits_per_view must have at least one class (last dimension); got 0")
    if not views.is_floating_point():
        raise TypeError(f"logits_per_view must be floating point; got {views.dtype}")
    return views


class StabilityLoss(nn.Module):
    """Module twin of :func:`stability_loss`.

    Example:
        >>> loss = StabilityLoss()
        >>> float(loss(torch.zeros(4, 8, 10)))  # four identical views
        0.0
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.reduction = reduction

    def forward(self, logits_per_view: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return stability_loss(logits_per_view, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
