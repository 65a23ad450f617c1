"""Saliency maps (Simonyan et al. 2014, https://arxiv.org/abs/1312.6034).

The gradient of the target class score with respect to the input: how much each input value
would change the score. The original project (docs/systems/saliency.md) calls these maps
"CAMs"; they are input-gradient saliency.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mltricks._utils.checks import check_module
from mltricks._utils.hooks import eval_mode
from mltricks.explain._common import target_gradient


class Saliency:
    """Input gradient of the target class score.

    Args:
        model: a classifier returning logits ``(B, num_classes)``; run in eval mode and left as
            found (modes, parameter gradients).
        absolute: return the absolute gradient (the usual saliency map, as captum's default);
            False keeps its sign.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> Saliency(model).attribute(torch.rand(2, 1, 2, 2), target=1).shape
        torch.Size([2, 1, 2, 2])
    """

    def __init__(self, model: nn.Module, *, absolute: bool = True) -> None:
        check_module("model", model)
        self.model = model
        self.absolute = bool(absolute)

    def attribute(self, x: torch.Tensor, target: Any) -> torch.Tensor:
        """Saliency of ``x`` ``(B, ...)`` for ``target`` (an int or ``(B,)`` classes), shaped
        like ``x``."""
        with eval_mode(self.model):
            gradient = target_gradient(self.model, x, target)
        return gradient.abs() if self.absolute else gradient

    def __repr__(self) -> str:
        return f"Saliency({type(self.model).__name__}, absolute={self.absolute})"
