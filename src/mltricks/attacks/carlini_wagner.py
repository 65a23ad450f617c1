"""Carlini-Wagner targeted L2 attack (Carlini and Wagner 2017, https://arxiv.org/abs/1608.04644).

The adversarial example is written ``x = mid + half * tanh(w)`` so that it never leaves the valid
range ``clamp = (mid - half, mid + half)``, and ``w`` is optimised with Adam to minimise, per
sample,

    ||x - x0||_2^2 + c * max(max_{j != t} z_j - z_t, -kappa)

with ``z`` the logits (``space="logits"``, the paper's choice) or the softmax probabilities
(``space="probs"``, as docs/systems/adversarial-attacks.md quotes the original criterion). The
second term is the *margin*: negative once the target wins, and ``kappa`` asks it to win by that
much. Every iterate that reaches the
target is a candidate; the smallest-L2 one per sample is kept. An optional binary search
adjusts ``c`` per sample: halve the gap towards a smaller ``c`` after a success, grow it after a
failure. The model runs in eval mode, its parameter gradients are never touched, and it comes
back in the modes it had.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.classifier import (
    check_clamp,
    check_inputs,
    check_target,
    class_scores,
)
from mltricks._utils.deprecation import deprecation_warning
from mltricks._utils.hooks import eval_mode
from mltricks.attacks._carlini_wagner_diagnosis import diagnose
from mltricks.attacks.result import CarliniWagnerResult

SPACES = ("logits", "probs")
# below this success rate the attack explains what most likely went wrong
LOW_SUCCESS = 0.5
# keeps atanh finite for inputs exactly on the bounds (the paper's 0.999999)
_TANH_SHRINK = 1.0 - 1e-6


def carlini_wagner(
    model: nn.Module,
    x: torch.Tensor,
    target: Any,
    *,
    kappa: float = 0.0,
    c: float = 1.0,
    steps: int = 100,
    lr: float = 0.01,
    binary_search_steps: int = 0,
    clamp: tuple[float, float] = (0.0, 1.0),
    space: str = "logits",
    abort_early: bool = True,
    return_result: bool | None = None,
) -> torch.Tensor | CarliniWagnerResult:
    """Targeted L2 attack: the closest input (within ``clamp``) that the model puts in ``target``.

    Args:
        model: a classifier returning logits ``(B, num_classes)``; run in eval mode.
        x: inputs ``(B, ...)`` inside ``clamp``.
        target: target classes, an int or a ``(B,)`` integer tensor.
        kappa: how far the target must lead (``>= 0``); in ``"probs"`` space below 1.
        c: weight of the margin term against the squared distance (``> 0``); the starting
            value of the binary search.
        steps: Adam steps per run.
        lr: Adam learning rate (in tanh space).
        binary_search_steps: extra runs that adjust ``c`` per sample by binary search (0: one
            run at ``c``).
        clamp: valid input range ``(low, high)``; the attack cannot leave it.
        space: ``"logits"`` (default, the paper) or ``"probs"`` (softmax outputs, as the original project).
        abort_early: stop a run once no sample's loss fell by 0.01% over a tenth of ``steps``.
        return_result: True returns the ``CarliniWagnerResult``, False the adversarial tensor
            (as ``fgsm``). Left out, it returns the result with a ``DeprecationWarning``: from
            0.3.0 the default is the tensor.

    Returns:
        The adversarial batch shaped like ``x`` (the unchanged input where the attack failed),
        or a ``CarliniWagnerResult`` with it, per-sample success, L2, margin and ``c``. Warns
        with the likely reason when fewer than half of the samples succeed.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(5, 1, 2, 2)
        >>> result = carlini_wagner(model, x, 2, c=10.0, steps=50, lr=0.1, return_result=True)
        >>> result.adversarial.shape, result.success.shape
        (torch.Size([5, 1, 2, 2]), torch.Size([5]))
    """
    low, high = check_clamp(clamp, allow_none=False)  # type: ignore[misc]
    x = check_inputs(x, clamp=(low, high))
    check_choice("space", space, SPACES)
    kappa_limit = 1.0 if space == "probs" else None  # a probability margin is at most 1
    check_number("kappa", kappa, low=0.0, high=kappa_limit, high_inclusive=False)
    check_number("c", c, low=0.0, low_inclusive=False)
    check_number("steps", steps, low=1, integer=True)
    check_number("lr", lr, low=0.0, low_inclusive=False)
    check_number("binary_search_steps", binary_search_steps, low=0, integer=True)
    if return_result is None:
        deprecation_warning(
            "carlini_wagner() will return the adversarial tensor, as fgsm() does, by default; "
            "pass return_result=True to keep the CarliniWagnerResult (success, l2, margin, c) "
            "or return_result=False for the tensor.",
        )
        return_result = True
    elif not isinstance(return_result, bool):
        raise TypeError(f"return_result must be True, False or None; got {return_result!r}")

    x0 = x.detach()
    batch = len(x0)
    mid, half = (high + low) / 2, (high - low) / 2
    w_start = torch.atanh(((x0 - mid) / half).clamp(-1.0, 1.0) * _TANH_SHRINK)
    found_training = any(module.training for module in model.modules())
    with eval_mode(model):
        with torch.no_grad():
            clean_scores = class_scores(model, x0)
        labels = check_target(target, batch, clean_scores.shape[1], clean_scores.device)
        c_now = torch.full((batch,), float(c), device=x0.device, dtype=x0.dtype)
        lower = torch.zeros_like(c_now)
        upper = torch.full_like(c_now, math.inf)
        best_l2sq = torch.full_like(c_now, math.inf)
        best = x0.clone()
        best_c = c_now.clone()
        for _ in range(1 + binary_search_steps):
            found, best, best_l2sq, best_c = _run(
                model,
                x0,
                labels,
                w_start,
                c_now,
                best,
                best_l2sq,
                best_c,
                kappa=kappa,
                steps=steps,
                lr=lr,
                space=space,
                mid=mid,
                half=half,
                abort_early=abort_early,
            )
            # binary search on c: shrink towards smaller c after a success, grow after a failure
            upper = torch.where(found, torch.minimum(upper, c_now), upper)
            lower = torch.where(found, lower, torch.maximum(lower, c_now))
            c_now = torch.where(upper < math.inf, (lower + upper) / 2, c_now * 10)
        success = torch.isfinite(best_l2sq)
        best_c = torch.where(success, best_c, lower)  # failures: the largest c tried
        with torch.no_grad():
            margin = _margin(_scores(model, best, space), labels)
        l2 = (best - x0).flatten(1).norm(dim=1)
        result = CarliniWagnerResult(best, success, l2, margin, best_c)
        if result.success_rate < LOW_SUCCESS:  # diagnosed in eval mode, as attacked
            warnings.warn(
                diagnose(
                    model, x0, clean_scores, result, c, binary_search_steps, space, found_training
                ),
                stacklevel=2,
            )
    return result if return_result else result.adversarial


def _run(
    model: nn.Module,
    x0: torch.Tensor,
    labels: torch.Tensor,
    w_start: torch.Tensor,
    c: torch.Tensor,
    best: torch.Tensor,
    best_l2sq: torch.Tensor,
    best_c: torch.Tensor,
    *,
    kappa: float,
    steps: int,
    lr: float,
    space: str,
    mid: float,
    half: float,
    abort_early: bool,
) -> tuple[torch.Tensor, ...]:
    """One Adam run at a fixed per-sample ``c``; updates the best successful examples."""
    w = w_start.clone().requires_grad_(True)
    adam = torch.optim.Adam([w], lr=lr)
    found = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    shape = (-1, *([1] * (x0.dim() - 1)))
    # early abort (the paper's rule, per sample): every tenth of the run, compare each sample's
    # loss with its loss a tenth earlier; stop once no sample is 0.01% lower. A summed loss
    # would stop samples that still improve whenever others overshoot.
    check_every = max(steps // 10, 1)
    previous = torch.full((len(x0),), math.inf, device=x0.device, dtype=x0.dtype)
    for step in range(steps):
        with torch.enable_grad():
            candidate = mid + half * torch.tanh(w)
            l2sq = (candidate - x0).pow(2).flatten(1).sum(1)
            margin = _margin(_scores(model, candidate, space), labels)
            losses = l2sq + c * margin.clamp(min=-kappa)
            # the gradient of w only: the model's parameter gradients stay untouched
            (w.grad,) = torch.autograd.grad(losses.sum(), w)
        with torch.no_grad():
            reached = (margin < 0) & (margin <= -kappa)
            found |= reached
            better = reached & (l2sq < best_l2sq)
            best_l2sq = torch.where(better, l2sq, best_l2sq)
            best = torch.where(better.view(shape), candidate, best)
            best_c = torch.where(better, c, best_c)
        adam.step()
        if abort_early and step % check_every == 0:
            losses = losses.detach()
            if not bool((losses < previous * 0.9999).any()):
                break
            previous = losses
    return found, best.detach(), best_l2sq, best_c


def _scores(model: nn.Module, x: torch.Tensor, space: str) -> torch.Tensor:
    scores = class_scores(model, x)
    return scores.softmax(1) if space == "probs" else scores


def _margin(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``max_{j != t} z_j - z_t`` per row."""
    target_score = scores.gather(1, labels[:, None])[:, 0]
    others = scores.scatter(1, labels[:, None], -math.inf)
    return others.max(1).values - target_score
