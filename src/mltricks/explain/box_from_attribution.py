"""Weak bounding boxes from attribution maps: bounding boxes from classification labels.

The weak labels of the saliency system (docs/systems/saliency.md).

A classifier trained on image labels alone says *what* is in the image; its attribution map says
roughly *where*. Keep the most relevant pixels (those above the ``quantile`` of the map's
relevance) and box them: a weakly supervised box, scored against true boxes by IoU.
"""

from __future__ import annotations

import torch

from mltricks._utils.checks import check_number
from mltricks.explain._common import pixel_relevance


def box_from_attribution(attribution: torch.Tensor, *, quantile: float = 0.95) -> torch.Tensor:
    """The box around the pixels whose relevance lies above the map's ``quantile``.

    Relevance is the absolute attribution, its maximum over the channels for ``(B, C, H, W)``
    maps. Boxes are ``x1, y1, x2, y2`` pixel corners with ``x2``/``y2`` exclusive (the format
    of ``mltricks.data.make_scenes`` and ``torchvision.ops``): a box around columns 3..5 has
    ``x1 = 3, x2 = 6``.

    Args:
        attribution: ``(H, W)``, ``(B, H, W)`` or ``(B, C, H, W)`` map.
        quantile: share of pixels left out, in ``[0, 1)``: 0.95 boxes the top 5% of pixels.

    Returns:
        ``(B, 4)`` float32 boxes, or ``(4,)`` for an ``(H, W)`` map.

    Example:
        >>> saliency = torch.zeros(1, 1, 8, 8)
        >>> saliency[0, 0, 2:4, 3:6] = 1.0
        >>> box_from_attribution(saliency, quantile=0.9)
        tensor([[3., 2., 6., 4.]])
    """
    check_number("quantile", quantile, low=0.0, high=1.0, high_inclusive=False)
    relevance = pixel_relevance(attribution)  # (B, H, W)
    flat = relevance.flatten(1)
    threshold = torch.quantile(flat, quantile, dim=1)[:, None, None]  # (B, 1, 1)
    # strictly above the quantile, so that a map mostly at zero boxes its non-zero part only;
    # the maximum always counts, so the box is never empty (a flat map boxes the whole image)
    keep = (relevance > threshold) | (relevance == flat.amax(1)[:, None, None])
    rows, cols = keep.any(2), keep.any(1)  # (B, H), (B, W)
    height, width = rows.shape[1], cols.shape[1]
    y1 = rows.int().argmax(1)
    y2 = height - rows.flip(1).int().argmax(1)
    x1 = cols.int().argmax(1)
    x2 = width - cols.flip(1).int().argmax(1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    return boxes[0] if attribution.dim() == 2 else boxes
