"""Detection targets in torchvision's format, checked before they reach a model.

torchvision's detection models take, per image, ``{"boxes": (n, 4) float x1, y1, x2, y2 in
pixels, "labels": (n,) int64}``. They accept silently what spoils training: label 0 (the
background class, so the box head never learns the object: the trap of the earlier
implementation), inverted or zero-area boxes (NaN losses), boxes outside the image.
``validate_targets`` finds those, names the image, and raises or repairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

Target = dict[str, torch.Tensor]


def validate_targets(
    targets: Sequence[Target],
    image_sizes: Sequence[tuple[int, int]],
    *,
    num_classes: int | None = None,
    repair: bool = False,
    names: Sequence[str] | None = None,
) -> list[Target]:
    """Check detection targets and return them in canonical form (float32 boxes, int64 labels).

    An image without objects (``boxes`` of shape ``(0, 4)``, or an empty tensor) is valid: it
    trains as a negative. Other keys of a target are passed through.

    Args:
        targets: per image a dict with ``"boxes"`` ``(n, 4)`` (``x1, y1, x2, y2`` pixels) and
            ``"labels"`` ``(n,)`` object classes starting at 1.
        image_sizes: per image its ``(height, width)``.
        num_classes: when given, labels must be at most ``num_classes``.
        repair: False raises ``ValueError`` on the first faulty box. True repairs what has one
            meaning: swaps inverted corners, clips boxes to the image, drops boxes of zero area
            (also after clipping) with their labels, and warns once listing what it changed.
            Wrong labels (0, negative, above ``num_classes``) and non-finite boxes always raise:
            no repair can know the intended class or place.
        names: image names for messages (file names from a loader); ``"image <i>"`` otherwise.

    Returns:
        New target dicts; the inputs are not modified.

    Example:
        >>> targets = [{"boxes": torch.tensor([[12.0, 5, 2, 20]]), "labels": torch.tensor([1])}]
        >>> validate_targets(targets, [(32, 32)], repair=True)[0]["boxes"].tolist()
        [[2.0, 5.0, 12.0, 20.0]]
    """
    if len(image_sizes) != len(targets):
        raise ValueError(
            f"image_sizes has {len(image_sizes)} entries but targets has {len(targets)}"
        )
    if names is not None and len(names) != len(targets):
        raise ValueError(f"names has {len(names)} entries but targets has {len(targets)}")
    repaired: list[str] = []
    result = []
    for index, (target, size) in enumerate(zip(targets, image_sizes)):
        name = names[index] if names is not None else f"image {index}"
        boxes, labels = _tensors(target, name)
        height, width = (float(v) for v in size)
        _check_labels(labels, name, num_classes)
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        outside = (
            (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
        ) & ~inverted
        if repair:
            boxes = torch.stack(
                [
                    torch.minimum(boxes[:, 0], boxes[:, 2]).clamp(0, width),
                    torch.minimum(boxes[:, 1], boxes[:, 3]).clamp(0, height),
                    torch.maximum(boxes[:, 0], boxes[:, 2]).clamp(0, width),
                    torch.maximum(boxes[:, 1], boxes[:, 3]).clamp(0, height),
                ],
                dim=1,
            )
        empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        for kind, flags in (("inverted", inverted), ("outside the image", outside)):
            for box_index in flags.nonzero().flatten().tolist():
                if not repair:
                    raise ValueError(
                        f"{name}: box {box_index} {boxes[box_index].tolist()} is {kind} (image "
                        f"height {height:g}, width {width:g}; boxes are x1, y1, x2, y2 with "
                        "x1 < x2 <= width, y1 < y2 <= height); fix it or pass repair=True"
                    )
                repaired.append(f"{name} box {box_index}: {kind}")
        for box_index in empty.nonzero().flatten().tolist():
            if not repair:
                raise ValueError(
                    f"{name}: box {box_index} {boxes[box_index].tolist()} has zero area; "
                    "remove it or pass repair=True to drop it"
                )
            repaired.append(f"{name} box {box_index}: zero area, dropped")
        keep = ~empty
        result.append({**target, "boxes": boxes[keep], "labels": labels[keep]})
    if repaired:
        shown = "; ".join(repaired[:10]) + (" ..." if len(repaired) > 10 else "")
        warnings.warn(f"validate_targets repaired {len(repaired)} boxes: {shown}", stacklevel=2)
    return result


def _tensors(target: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise TypeError(f"{name}: a target must be a dict with 'boxes' and 'labels'")
    boxes = torch.as_tensor(target["boxes"], dtype=torch.float32)
    labels = torch.as_tensor(target["labels"])
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)  # torch.tensor([]) has shape (0,): an image without objects
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: boxes must have shape (n, 4); got {tuple(boxes.shape)}")
    if labels.numel() == 0:
        labels = labels.to(torch.int64)  # torch.tensor([]) is float32
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name}: labels must be integers; got dtype {labels.dtype}")
    labels = labels.to(torch.int64).reshape(-1)
    if len(labels) != len(boxes):
        raise ValueError(f"{name}: {len(boxes)} boxes but {len(labels)} labels")
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{name}: boxes hold non-finite values: {boxes.tolist()}")
    return boxes, labels


def _check_labels(labels: torch.Tensor, name: str, num_classes: int | None) -> None:
    if (labels < 1).any():
        raise ValueError(
            f"{name}: labels {labels.tolist()} hold {int(labels.min())}; object classes start "
            "at 1 because torchvision's detectors treat 0 as background (a box labeled 0 is "
            "never learned as an object)"
        )
    if num_classes is not None and (labels > num_classes).any():
        raise ValueError(
            f"{name}: labels {labels.tolist()} exceed num_classes={num_classes} (allowed: 1 to "
            f"{num_classes})"
        )


def collate_detection(batch: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """``collate_fn`` for detection loaders: a list of ``(image, target, ...)`` samples becomes
    ``(images, targets, ...)`` lists, since images may differ in size and targets in length."""
    return tuple(list(items) for items in zip(*batch))
