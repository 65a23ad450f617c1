"""Masking curves: gradually masking out one object decreases its class score.

The test of the saliency system (docs/systems/saliency.md).

A region (an object's box or mask) is covered step by step, from its centre outwards, and the
model's score for a class is read after every step. If the model relies on the object, the
object's class score falls as more of it disappears, while another class's score may rise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltricks._utils.checks import check_choice
from mltricks._utils.deprecation import deprecation_warning
from mltricks.explain._common import (
    CURVE_OUTPUTS,
    check_curve_inputs,
    inverse_permutation,
    masked_target_scores,
)
from mltricks.explain._scores_as_tensor import ScoresAsTensor


@dataclass(eq=False)
class MaskingCurve(ScoresAsTensor):
    """Scores while a growing share of a region is masked.

    Attributes:
        fractions: ``(steps + 1,)`` share of the region masked at each step, 0 to 1.
        scores: ``(B, steps + 1)`` score of the target class; column ``k`` has the
            ``k / steps`` share of the region masked.
    """

    fractions: torch.Tensor
    scores: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        """``(B,)`` area under ``scores`` over the masked share (trapezoids)."""
        return torch.trapezoid(self.scores, self.fractions, dim=1)


def masking_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: Any,
    region: torch.Tensor,
    steps: int = 10,
    *,
    fill: float = 0.0,
    output: str | None = None,
) -> MaskingCurve:
    """The score of ``target`` while a growing part of ``region`` is set to ``fill``.

    At step ``k`` the ``k / steps`` share of the region's pixels nearest to its centre (in the
    region's own scaled Chebyshev distance, so a box is covered by a growing box of its shape)
    are masked in every channel; step 0 is the untouched input, step ``steps`` masks it all.

    Args:
        model: a classifier returning logits ``(B, num_classes)``; run in eval mode.
        x: images ``(B, C, H, W)``.
        target: the class whose score is read, an int or ``(B,)`` classes.
        region: boxes ``(B, 4)`` or ``(4,)`` as ``x1, y1, x2, y2`` pixel corners (``x2``, ``y2``
            exclusive, the format of ``make_scenes``), or boolean masks ``(B, H, W)`` or
            ``(H, W)``.
        steps: masking steps after the untouched input.
        fill: the value masked pixels get.
        output: ``"probs"`` (softmax, as ``deletion_curve`` and RISE read them) or
            ``"logits"``. Left out, it is ``"logits"`` with a ``DeprecationWarning``: from 0.3.0
            the default is ``"probs"``, as in ``deletion_curve``.

    Returns:
        ``MaskingCurve`` with ``fractions`` ``(steps + 1,)``, ``scores`` ``(B, steps + 1)``
        (column ``k`` has the ``k / steps`` share masked) and their ``auc`` ``(B,)``. Until 0.3.0
        it also acts as the ``scores`` tensor it replaces, with a ``DeprecationWarning``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from mltricks.explain import masking_curve
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> box = torch.tensor([0, 0, 2, 2])
        >>> curve = masking_curve(model, torch.rand(2, 1, 4, 4), 1, box, output="probs")
        >>> curve.scores.shape, curve.auc.shape
        (torch.Size([2, 11]), torch.Size([2]))
    """
    x = check_curve_inputs(x, steps, fill)
    if output is None:
        deprecation_warning(
            "masking_curve() will read probabilities by default, as deletion_curve() does: "
            "pass output='probs' for the new default or output='logits' to keep logits."
        )
        output = "logits"
    check_choice("output", output, CURVE_OUTPUTS)
    inside, distance = _region_distance(region, x)
    rank = _rank(distance)  # (B, H, W); pixels outside the region rank last
    count = inside.flatten(1).sum(1)  # (B,)
    # step k masks the k / steps share of each region, nearest its centre first: (B, 1, H, W)
    masks = (
        (rank < torch.round(count * step / steps)[:, None, None]).unsqueeze(1)
        for step in range(steps + 1)
    )
    scores = masked_target_scores(model, x, target, masks, fill=fill, output=output)
    fractions = torch.linspace(0.0, 1.0, steps + 1, device=x.device)
    return MaskingCurve(fractions, scores)


def _region_distance(region: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, W)`` inside-mask and distance to the region's centre (inf outside)."""
    batch, _, height, width = x.shape
    if not isinstance(region, torch.Tensor):
        raise TypeError(f"region must be a tensor of boxes or masks; got {type(region).__name__}")
    region = region.to(x.device)
    if region.dtype == torch.bool:
        if region.dim() == 2:
            region = region.expand(batch, -1, -1)
        if region.shape != (batch, height, width):
            raise ValueError(
                f"region masks must have shape (B, H, W) = ({batch}, {height}, {width}) or "
                f"(H, W); got shape {tuple(region.shape)}"
            )
        if not region.flatten(1).any(1).all():
            raise ValueError("region must mark at least one pixel of every image; a mask is empty")
        inside = region
        rows, cols = inside.any(2), inside.any(1)
        ys = torch.arange(height, device=x.device).expand(batch, -1)
        xs = torch.arange(width, device=x.device).expand(batch, -1)
        big = max(height, width)
        boxes = torch.stack(
            [
                torch.where(cols, xs, big).amin(1),
                torch.where(rows, ys, big).amin(1),
                torch.where(cols, xs, -1).amax(1) + 1,
                torch.where(rows, ys, -1).amax(1) + 1,
            ],
            dim=1,
        ).float()
    else:
        boxes = region.float()
        if boxes.dim() == 1:
            boxes = boxes.expand(batch, -1)
        if boxes.shape != (batch, 4):
            raise ValueError(
                f"region boxes must have shape (B, 4) = ({batch}, 4) or (4,); got shape "
                f"{tuple(region.shape)}"
            )
        x1, y1, x2, y2 = boxes.unbind(1)
        if bool(((x2 <= x1) | (y2 <= y1)).any()):
            raise ValueError(f"region boxes must have x2 > x1 and y2 > y1; got {region.tolist()}")
        inside = None
    x1, y1, x2, y2 = (value[:, None, None] for value in boxes.unbind(1))
    py = torch.arange(height, device=x.device).view(1, -1, 1) + 0.5  # pixel centres
    px = torch.arange(width, device=x.device).view(1, 1, -1) + 0.5
    if inside is None:
        inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
        if not inside.flatten(1).any(1).all():
            raise ValueError(
                f"region boxes must cover at least one pixel of the {height}x{width} images; "
                f"got {region.tolist()}"
            )
    distance = torch.maximum(
        (px - (x1 + x2) / 2).abs() / (x2 - x1), (py - (y1 + y2) / 2).abs() / (y2 - y1)
    )
    return inside, torch.where(inside, distance, torch.inf)


def _rank(values: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel by ``values`` (ascending, ties by position), shaped like values."""
    return inverse_permutation(values.flatten(1).argsort(dim=1, stable=True)).view_as(values)
