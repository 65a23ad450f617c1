"""Guided backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806).

The input gradient of the target class score, with one change at every ReLU: besides zeroing the
gradient where the ReLU's input was negative (the ordinary ReLU gradient), it also zeroes
negative incoming gradients. Only ``nn.ReLU`` modules change; every other layer backpropagates
as usual (the earlier implementation changed every module). A ReLU called as a function
(``torch.relu``, ``F.relu``, ``x.relu()``) cannot be hooked, so it raises a clear error instead of
silently giving the plain gradient there.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from mltricks._utils.checks import check_module
from mltricks._utils.hooks import eval_mode, forward_hooks
from mltricks.explain._common import target_gradient

# the functional spellings of a ReLU that an ``nn.ReLU`` hook cannot reach
_FUNCTIONAL_RELUS = {
    torch.relu: "torch.relu",
    torch.relu_: "torch.relu_",
    F.relu: "torch.nn.functional.relu",
    F.relu_: "torch.nn.functional.relu_",
    torch.Tensor.relu: "Tensor.relu",
    torch.Tensor.relu_: "Tensor.relu_",
}


class GuidedBackprop:
    """Input gradient with guided ReLU gradients: only positive gradients through active units.

    Args:
        model: a classifier returning logits ``(B, num_classes)`` whose ReLUs are ``nn.ReLU``
            modules (in-place ones included); run in eval mode, and left with no hook and in the
            modes it had.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> GuidedBackprop(model).attribute(torch.rand(2, 1, 2, 2), target=0).shape
        torch.Size([2, 1, 2, 2])
    """

    def __init__(self, model: nn.Module) -> None:
        check_module("model", model)
        self.model = model

    def attribute(self, x: torch.Tensor, target: Any) -> torch.Tensor:
        """Guided gradient of ``x`` ``(B, ...)`` for ``target`` (an int or ``(B,)`` classes),
        shaped like ``x``."""
        relus = [m for m in self.model.modules() if isinstance(m, nn.ReLU)]
        guard = _FunctionalReluGuard()
        with (
            eval_mode(self.model),
            forward_hooks(relus, guard.leave, pre_hook=guard.enter),
            guard,
        ):
            gradient = target_gradient(self.model, x, target)
        if not relus:
            warnings.warn(
                "the model has no nn.ReLU module: guided backprop equals the plain gradient",
                stacklevel=2,
            )
        return gradient

    def __repr__(self) -> str:
        return f"GuidedBackprop({type(self.model).__name__})"


def _keep_positive(gradient: torch.Tensor) -> torch.Tensor:
    return gradient.clamp(min=0)


class _FunctionalReluGuard(TorchFunctionMode):
    """Guides the ReLU modules and fails on a ReLU called as a function outside one.

    ``enter``/``leave`` are the forward pre-hook and hook of every ``nn.ReLU``. ``leave`` hooks
    the ReLU's output tensor: the gradient arriving there is clamped at zero before the ReLU's
    own backward masks it by ``input > 0``, which together is the guided gradient. A tensor hook
    (rather than a module backward hook) also works for in-place ReLUs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 while an nn.ReLU module runs

    def enter(self, module: nn.Module, inputs: Any) -> None:
        self.depth += 1

    def leave(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.depth -= 1
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(_keep_positive)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if self.depth == 0 and func in _FUNCTIONAL_RELUS:
            raise ValueError(
                f"GuidedBackprop can only change the gradients of nn.ReLU modules, but the model "
                f"calls {_FUNCTIONAL_RELUS[func]} outside one, whose gradient would pass "
                "unguided; replace that call by an nn.ReLU module"
            )
        return func(*args, **(kwargs or {}))
