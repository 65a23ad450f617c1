"""A classifier's inputs, targets and class scores, checked the same way wherever they are used.

The attacks, the explainers and the training steps all call a model that returns class scores
and read them by class. What they share lives here: the rule that reads logits out of a model's
output (``logits_of``: a tuple or list output counts by its first element, as for models that
return ``(logits, embeddings)``), the class scores of a batch with their shape checked
(``class_scores``), and the checks of an input batch, its valid value range and its target
classes, each with an error that names the argument, the value and what is allowed.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    >>> x = check_inputs(torch.rand(2, 1, 2, 2), clamp=(0.0, 1.0))
    >>> class_scores(model, x).shape, check_target(2, 2, 3, x.device).tolist()
    (torch.Size([2, 3]), [2, 2])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = [
    "RANGE_TOLERANCE",
    "check_clamp",
    "check_inputs",
    "check_target",
    "class_scores",
    "expand_target",
    "logits_of",
    "looks_like_probabilities",
]

# how far outside ``clamp`` an input may lie and still count as inside (float rounding)
RANGE_TOLERANCE = 1e-5


def logits_of(output: Any) -> torch.Tensor:
    """A model's logits: the output itself, or the first element of a tuple or list output.

    The one place the rule is written; the callers check that what comes back is a tensor of
    the shape they need (an empty tuple comes back unchanged).
    """
    if isinstance(output, tuple | list) and output:
        return output[0]
    return output


def class_scores(model: nn.Module, x: torch.Tensor, name: str = "model") -> torch.Tensor:
    """``model(x)`` read by ``logits_of``, checked to be ``(B, num_classes)`` class scores."""
    output = logits_of(model(x))
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        raise TypeError(
            f"{name} must return class scores, a float tensor of shape (B, num_classes) "
            f"(or a tuple starting with one); got {type(output).__name__}"
        )
    if output.dim() != 2 or output.shape[0] != x.shape[0] or output.shape[1] < 2:
        raise ValueError(
            f"{name} must return class scores of shape (B, num_classes) with B={x.shape[0]} and "
            f"at least 2 classes; got shape {tuple(output.shape)}"
        )
    return output


def looks_like_probabilities(scores: torch.Tensor) -> bool:
    """True when every row is non-negative and sums to one: a softmax output, not logits."""
    with torch.no_grad():
        if float(scores.min()) < 0:
            return False
        return float((scores.sum(1) - 1).abs().max()) < 1e-4


def check_inputs(x: Any, name: str = "x", clamp: tuple[float, float] | None = None) -> torch.Tensor:
    """``x`` must be a floating tensor with a batch dimension, finite values, inside ``clamp``
    when one is given (a perturbation is clamped to it)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, ...); got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must have a batch dimension and at least one sample, shape (B, ...); "
            f"got shape {tuple(x.shape)}"
        )
    # one pass: NaN and infinity show in the extremes too
    smallest, largest = (float(v) for v in torch.aminmax(x.detach()))
    if not (math.isfinite(smallest) and math.isfinite(largest)):
        raise ValueError(f"{name} must hold finite values; it holds NaN or infinity")
    if clamp is not None:
        low, high = clamp
        if smallest < low - RANGE_TOLERANCE or largest > high + RANGE_TOLERANCE:
            raise ValueError(
                f"{name} must lie inside clamp=({low:g}, {high:g}); its values span "
                f"[{smallest:.4g}, {largest:.4g}]. Pass inputs in the model's valid range "
                "(e.g. before normalisation, inside the model) or set clamp to that range"
            )
    return x


def check_clamp(clamp: Any, *, allow_none: bool = True) -> tuple[float, float] | None:
    """``clamp`` is a ``(low, high)`` pair with ``low < high`` (or None where allowed)."""
    if clamp is None and allow_none:
        return None
    valid = isinstance(clamp, tuple | list) and len(clamp) == 2
    if valid:
        try:
            low, high = float(clamp[0]), float(clamp[1])
        except (TypeError, ValueError):
            valid = False
        else:
            valid = math.isfinite(low) and math.isfinite(high) and low < high
    if not valid:
        allowed = "a (low, high) pair of finite numbers with low < high"
        raise ValueError(
            f"clamp must be {allowed + (' or None' if allow_none else '')}; got {clamp!r}"
        )
    return low, high


def check_target(
    target: Any, batch_size: int, num_classes: int, device: torch.device, name: str = "target"
) -> torch.Tensor:
    """An int or a ``(B,)`` integer tensor/sequence of classes in ``[0, num_classes)``, returned
    as a ``(B,)`` long tensor on ``device``."""
    if isinstance(target, bool):
        raise TypeError(f"{name} must be an int or a (B,) integer tensor; got {target!r}")
    if not isinstance(target, torch.Tensor):
        try:
            target = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{name} must be an int or a (B,) integer tensor; got {type(target).__name__}"
            ) from error
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices; got dtype {target.dtype}")
    target = expand_target(target, batch_size, name)
    smallest, largest = (int(v) for v in torch.aminmax(target))
    if smallest < 0 or largest >= num_classes:
        raise ValueError(
            f"{name} must hold classes in [0, {num_classes - 1}] (the model has {num_classes} "
            f"outputs); got values from {smallest} to {largest}"
        )
    return target.to(device=device, dtype=torch.long)


def expand_target(target: torch.Tensor, batch_size: int, name: str = "target") -> torch.Tensor:
    """A 0-d ``target`` (one class for every sample) repeated ``batch_size`` times; any other
    must already have shape ``(B,)``. Its values are not checked: ``check_target`` does that."""
    if target.dim() == 0:
        target = target.expand(batch_size)
    if target.shape != (batch_size,):
        raise ValueError(
            f"{name} must be an int or have shape (B,) = ({batch_size},); got shape "
            f"{tuple(target.shape)}"
        )
    return target
