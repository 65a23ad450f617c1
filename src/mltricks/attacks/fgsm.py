"""Fast gradient sign method (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572).

One step of size ``eps`` along the sign of the input gradient of the cross-entropy loss: away
from the true class (untargeted) or towards a target class (targeted), then clamped to the valid
input range. The model runs in eval mode, its parameter gradients are never touched (the input
gradient comes from ``torch.autograd.grad``), and it comes back in the modes it had.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, overload

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_number
from mltricks._utils.classifier import (
    check_clamp,
    check_inputs,
    check_target,
    class_scores,
    looks_like_probabilities,
)
from mltricks._utils.hooks import eval_mode
from mltricks.attacks.result import AttackResult


@overload
def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: Any,
    *,
    eps: float | torch.Tensor,
    targeted: bool = ...,
    clamp: tuple[float, float] | None = ...,
    return_result: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: Any,
    *,
    eps: float | torch.Tensor,
    targeted: bool = ...,
    clamp: tuple[float, float] | None = ...,
    return_result: Literal[True],
) -> AttackResult: ...


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: Any,
    *,
    eps: float | torch.Tensor,
    targeted: bool = False,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    return_result: bool = False,
) -> torch.Tensor | AttackResult:
    """Adversarial examples ``clamp(x + eps * sign(grad_x loss(model(x), y)))``.

    Args:
        model: a classifier returning logits ``(B, num_classes)``; run in eval mode.
        x: inputs ``(B, ...)`` inside ``clamp``.
        y: the true classes (untargeted) or the target classes (``targeted=True``), an int or a
            ``(B,)`` integer tensor.
        eps: step size, a number ``>= 0`` or a ``(B,)`` tensor of per-sample steps.
        targeted: step towards ``y`` (down the loss of ``y``) instead of away from it.
        clamp: valid input range ``(low, high)`` the result is clamped to; None: no clamping.
        return_result: return an ``AttackResult`` that also says, per sample, whether the
            model's prediction on the adversarial example left ``y`` (untargeted) or reached it
            (targeted); costs one more forward pass.

    Returns:
        A new tensor shaped like ``x`` (detached), or an ``AttackResult`` holding it.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(2, 1, 2, 2)
        >>> fgsm(model, x, torch.tensor([0, 2]), eps=0.1).shape
        torch.Size([2, 1, 2, 2])
    """
    bounds = check_clamp(clamp)
    x = check_inputs(x, clamp=bounds)
    step_size = _check_eps(eps, x)
    with eval_mode(model), torch.enable_grad():
        inputs = x.detach().clone().requires_grad_(True)
        scores = class_scores(model, inputs)
        labels = check_target(y, len(x), scores.shape[1], scores.device, name="y")
        if looks_like_probabilities(scores):
            warnings.warn(
                "the model seems to return probabilities (rows sum to 1), but cross-entropy "
                "expects logits: drop the final softmax for a meaningful gradient",
                stacklevel=2,
            )
        # summed, not averaged: each sample's gradient is its own, and no 1/B makes it underflow
        loss = F.cross_entropy(scores, labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    direction = -gradient.sign() if targeted else gradient.sign()
    adversarial = x.detach() + step_size * direction
    if bounds is not None:
        adversarial = adversarial.clamp(*bounds)
    if not return_result:
        return adversarial
    with eval_mode(model), torch.no_grad():
        predicted = class_scores(model, adversarial).argmax(1)
    success = predicted == labels if targeted else predicted != labels
    return AttackResult(adversarial, success)


def _check_eps(eps: Any, x: torch.Tensor) -> torch.Tensor | float:
    """A float, or a per-sample tensor shaped to broadcast over ``x``."""
    if not isinstance(eps, torch.Tensor):
        check_number("eps", eps, low=0.0)
        return float(eps)
    if eps.dim() == 0:
        check_number("eps", float(eps), low=0.0)
        return float(eps)
    if eps.shape != (len(x),):
        raise ValueError(
            f"eps must be a number or a (B,) = ({len(x)},) tensor of per-sample steps; got "
            f"shape {tuple(eps.shape)}"
        )
    if not torch.isfinite(eps).all() or bool((eps < 0).any()):
        raise ValueError(f"eps must be >= 0 and finite for every sample; got {eps.tolist()}")
    return eps.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))
