"""Mutual-exclusivity loss: unlabeled predictions should name exactly one class.

Sajjadi, Javanmardi and Tasdizen, "Mutual Exclusivity Loss for Semi-Supervised Deep Learning",
ICIP 2016, https://arxiv.org/abs/1606.03141.
"""

from __future__ import annotations

import torch
from torch import nn

from mltricks._utils.checks import check_choice
from mltricks.semi_supervised._reduction import REDUCTIONS, reduce_per_sample


def mutual_exclusivity_loss(logits: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Minus the probability mass of "exactly one class is on", per sample.

    With ``p = softmax(logits)`` over ``C`` classes,

        l_ME(x) = - sum_k p_k * prod_{j != k} (1 - p_j).

    It lies in ``[-1, 0]``: ``-1`` exactly at a one-hot output (for every class), and larger for
    spread-out outputs (``-(1 - 1/C)^(C - 1)``, about ``-0.387`` for ten classes, at the uniform
    one), so minimising it pushes unlabeled predictions to be confident, which moves the decision
    boundary into low-density regions and rules out the stability loss's trivial constant
    solution. The products ``prod_{j != k}`` come from prefix and suffix cumulative products, in
    ``O(C)`` per sample and without dividing by ``1 - p_k`` (which is 0 at a one-hot output).

    Args:
        logits: ``(..., C)`` unnormalised scores, ``C >= 2``; leading dimensions are samples
            (``(B, C)``, or ``(n_views, B, C)`` to average over views too).
        reduction: ``"mean"`` (over samples), ``"sum"`` or ``"none"`` (shape ``logits.shape[:-1]``).

    Returns:
        A scalar, or the per-sample losses for ``reduction="none"``.

    Example:
        >>> float(mutual_exclusivity_loss(torch.tensor([[30.0, 0.0, 0.0]])))  # one-hot
        -1.0
        >>> round(float(mutual_exclusivity_loss(torch.zeros(1, 3))), 4)  # uniform: -3 * 1/3 * 4/9
        -0.4444
    """
    check_choice("reduction", reduction, REDUCTIONS)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a tensor (..., num_classes); got {type(logits).__name__}")
    if logits.dim() < 1 or logits.shape[-1] < 2:
        raise ValueError(
            "logits must have shape (..., num_classes) with num_classes >= 2; got shape "
            f"{tuple(logits.shape)}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point; got {logits.dtype}")
    probabilities = logits.softmax(dim=-1)  # (..., C)
    off = 1.0 - probabilities
    ones = torch.ones_like(off[..., :1])
    # before[k] = prod_{j < k} off_j, after[k] = prod_{j > k} off_j
    before = torch.cumprod(torch.cat([ones, off[..., :-1]], dim=-1), dim=-1)
    after = torch.cumprod(torch.cat([ones, off[..., 1:].flip(-1)], dim=-1), dim=-1).flip(-1)
    per_sample = -(probabilities * before * after).sum(dim=-1)
    return reduce_per_sample(per_sample, reduction)


class MutualExclusivityLoss(nn.Module):
    """Module twin of :func:`mutual_exclusivity_loss`.

    Example:
        >>> loss = MutualExclusivityLoss()
        >>> loss(torch.randn(8, 10)).shape
        torch.Size([])
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return mutual_exclusivity_loss(logits, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
