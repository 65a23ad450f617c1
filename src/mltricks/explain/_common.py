"""Plumbing shared by the explainers: the target-score gradient and pixel relevance."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from mltricks._utils.classifier import check_inputs, check_target, class_scores


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
