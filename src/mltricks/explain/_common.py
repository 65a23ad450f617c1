"""Plumbing shared by the explainers and the curves that score them: the target-score gradient,
pixel relevance, and the target's score while chosen pixels are blanked out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn

from mltricks._utils.checks import check_number
from mltricks._utils.classifier import check_inputs, check_target, class_scores
from mltricks._utils.hooks import eval_mode

# what a curve reads: the target's softmax probability or its logit
CURVE_OUTPUTS = ("logits", "probs")


class Explainer(Protocol):
    """Anything with ``attribute(x, target) -> tensor shaped like x`` (what SmoothGrad wraps)."""

    model: nn.Module

    def attribute(self, x: torch.Tensor, target: Any) -> torch.Tensor: ...


def target_gradient(model: nn.Module, x: torch.Tensor, target: Any) -> torch.Tensor:
    """Gradient of each sample's target class score (its logit) with respect to the input.

    The input is cloned, so ``x`` and its ``.grad`` are untouched, and the gradient comes from
    ``torch.autograd.grad``, so the model's parameter gradients are never written.
    """
    x = check_inputs(x)
    with torch.enable_grad():
        inputs = x.detach().clone().requires_grad_(True)
        scores = class_scores(model, inputs)
        labels = check_target(target, len(x), scores.shape[1], scores.device)
        # samples do not interact in eval mode, so the sum's gradient is each sample's own
        score = scores.gather(1, labels[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, inputs)
    return gradient


def pixel_relevance(attribution: torch.Tensor, name: str = "attribution") -> torch.Tensor:
    """``(B, H, W)`` relevance per pixel: the largest absolute value over the channels.

    Accepts ``(H, W)``, ``(B, H, W)`` or ``(B, C, H, W)`` maps (Simonyan et al. take the maximum
    of the absolute gradient over the colour channels).
    """
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(attribution).__name__}")
    if attribution.dim() not in (2, 3, 4):
        raise ValueError(
            f"{name} must have shape (H, W), (B, H, W) or (B, C, H, W); got shape "
            f"{tuple(attribution.shape)}"
        )
    if not torch.isfinite(attribution).all():
        raise ValueError(f"{name} must hold finite values; it holds NaN or infinity")
    relevance = attribution.detach().float().abs()
    if relevance.dim() == 2:
        relevance = relevance[None]
    elif relevance.dim() == 4:
        relevance = relevance.amax(1)
    return relevance


def check_curve_inputs(x: Any, steps: Any, fill: Any) -> torch.Tensor:
    """``x`` checked to be images ``(B, C, H, W)``, and a curve's ``steps`` (an int >= 1) and
    ``fill`` (a number)."""
    x = check_inputs(x)
    if x.dim() != 4:
        raise ValueError(f"x must be images of shape (B, C, H, W); got shape {tuple(x.shape)}")
    check_number("steps", steps, low=1, integer=True)
    check_number("fill", fill)
    return x


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` rank of every position in each row's ``order`` (``rank[b, order[b, k]] = k``)."""
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return rank.scatter_(1, order, positions)


def masked_target_scores(
    model: nn.Module,
    x: torch.Tensor,
    target: Any,
    masks: Iterable[torch.Tensor],
    *,
    fill: float,
    output: str,
) -> torch.Tensor:
    """``(B, num_masks)`` score of ``target`` (``output``: ``"probs"`` or ``"logits"``) with the
    pixels of each mask (boolean, broadcast to ``x``'s ``(B, C, H, W)``) set to ``fill``.

    The model runs in eval mode and without gradients; the target is checked against the first
    output (an int or ``(B,)`` classes).
    """
    labels = None
    values = []
    with eval_mode(model), torch.no_grad():
        for mask in masks:
            logits = class_scores(model, torch.where(mask, torch.full_like(x, fill), x))
            if labels is None:
                labels = check_target(target, len(x), logits.shape[1], logits.device)
            scores = logits.softmax(1) if output == "probs" else logits
            values.append(scores.gather(1, labels[:, None])[:, 0])
    return torch.stack(values, dim=1)
