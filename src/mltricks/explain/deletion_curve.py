"""Deletion curves (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421).

Delete the pixels an attribution map ranks most relevant first, a growing share at a time, and
watch the target class's score: a faithful map makes it fall fast, so the area under the curve
(AUC) is small. The same deletion in a random pixel order is the baseline every map must beat;
a map that does not is no better than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltricks._utils.checks import check_choice
from mltricks._utils.randomness import torch_generator
from mltricks.explain._common import (
    CURVE_OUTPUTS,
    check_curve_inputs,
    inverse_permutation,
    masked_target_scores,
    pixel_relevance,
)


@dataclass
class DeletionCurve:
    """Scores while the most relevant pixels are deleted, and the random-order baseline.

    Attributes:
        fractions: ``(steps + 1,)`` share of pixels deleted at each step, 0 to 1.
        scores: ``(B, steps + 1)`` target score, most relevant pixels deleted first.
        random_scores: ``(B, steps + 1)`` target score, pixels deleted in a random order.
    """

    fractions: torch.Tensor
    scores: torch.Tensor
    random_scores: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        """``(B,)`` area under ``scores`` over the deleted share (trapezoids); lower is better."""
        return torch.trapezoid(self.scores, self.fractions, dim=1)

    @property
    def random_auc(self) -> torch.Tensor:
        """``(B,)`` area under the random-order curve: the baseline."""
        return torch.trapezoid(self.random_scores, self.fractions, dim=1)


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: Any,
    attribution: torch.Tensor,
    steps: int = 20,
    *,
    fill: float = 0.0,
    output: str = "probs",
    random_state: int | torch.Generator | None = None,
) -> DeletionCurve:
    """Delete pixels in the order of ``attribution`` (most relevant first) and in random order.

    A pixel's relevance is its absolute attribution, the maximum over the channels; ties are
    broken at random. Deleting sets all channels of the pixel to ``fill``.

    Args:
        model: a classifier returning logits ``(B, num_classes)``; run in eval mode.
        x: images ``(B, C, H, W)``.
        target: the explained class, an int or ``(B,)`` classes.
        attribution: maps ``(B, C, H, W)`` or ``(B, H, W)`` for ``x``.
        steps: deletion steps; step ``k`` deletes the ``k / steps`` share of the pixels.
        fill: the value deleted pixels get.
        output: ``"probs"`` (softmax, as in RISE) or ``"logits"``.
        random_state: seed of the random order and of tie-breaking (int, generator or None).

    Returns:
        ``DeletionCurve`` with ``scores``, ``random_scores`` and their ``auc``/``random_auc``.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> x = torch.rand(2, 1, 4, 4)
        >>> curve = deletion_curve(model, x, 0, torch.rand(2, 1, 4, 4), steps=4, random_state=0)
        >>> curve.scores.shape, curve.auc.shape
        (torch.Size([2, 5]), torch.Size([2]))
    """
    x = check_curve_inputs(x, steps, fill)
    check_choice("output", output, CURVE_OUTPUTS)
    batch, _, height, width = x.shape
    relevance = pixel_relevance(attribution).to(x.device)
    if attribution.dim() == 2 or relevance.shape != (batch, height, width):
        raise ValueError(
            f"attribution must have shape (B, C, H, W) or (B, H, W) matching x's "
            f"(B, H, W) = ({batch}, {height}, {width}); got shape {tuple(attribution.shape)}"
        )
    generator = torch_generator(random_state, x.device)
    num_pixels = height * width
    # a random order first, then a stable sort by relevance: ties fall in random order
    shuffled = torch.rand((batch, num_pixels), generator=generator, device=x.device).argsort(dim=1)
    by_relevance = (
        relevance.flatten(1).gather(1, shuffled).argsort(dim=1, descending=True, stable=True)
    )
    orders = {"map": shuffled.gather(1, by_relevance), "random": shuffled}
    fractions = torch.linspace(0.0, 1.0, steps + 1, device=x.device)
    curves = {}
    for name, order in orders.items():
        rank = inverse_permutation(order).view(batch, 1, height, width)
        # step k deletes the pixels ranked below its share of them
        deleted = (rank < round(num_pixels * step / steps) for step in range(steps + 1))
        curves[name] = masked_target_scores(model, x, target, deleted, fill=fill, output=output)
    return DeletionCurve(fractions, curves["map"], curves["random"])
