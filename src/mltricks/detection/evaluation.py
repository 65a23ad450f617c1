"""Detection scores: COCO-style mean average precision and false positives on confounders.

``mean_average_precision`` follows the COCO evaluation (Lin et al. 2014,
https://arxiv.org/abs/1405.0312; ``pycocotools.cocoeval``): per class and IoU threshold,
detections of all images sorted by score are matched greedily to unmatched ground-truth boxes,
precision is made monotone and read at 101 recall points, and AP is their mean. mAP averages over
classes that have ground truth. It gives the numbers of ``torchmetrics``'
``MeanAveragePrecision(iou_type="bbox")`` (tests compare them) without its ``pycocotools`` or
``faster_coco_eval`` dependency, which a plain install lacks. Crowd regions and the small /
medium / large breakdown of COCO are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

Detection = dict[str, torch.Tensor]
COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def mean_average_precision(
    predictions: Sequence[Detection],
    targets: Sequence[Detection],
    *,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    max_detections: int = 100,
) -> dict[str, torch.Tensor]:
    """COCO mean average precision of detections against ground truth.

    Args:
        predictions: per image ``{"boxes": (n, 4) x1 y1 x2 y2, "scores": (n,), "labels": (n,)}``
            (the eval-mode output of a torchvision detector).
        targets: per image ``{"boxes": (m, 4), "labels": (m,)}``; images without objects count.
        iou_thresholds: IoU thresholds averaged for ``map`` (COCO: 0.5, 0.55, ..., 0.95).
        max_detections: highest-scoring detections kept per image and class.

    Returns:
        ``map`` (mean over classes and thresholds), ``map_50`` and ``map_75`` (when 0.5 / 0.75
        are thresholds), ``classes`` (the class ids with ground truth or detections, sorted),
        ``map_per_class`` and ``map_50_per_class`` (``-1`` for a class without ground truth,
        which is left out of the means), ``ap`` ``(num_thresholds, num_classes)``. A mean over
        no class is ``-1``, as in COCO.

    Example:
        >>> target = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
        >>> pred = [{**target[0], "scores": torch.tensor([0.9])}]
        >>> float(mean_average_precision(pred, target)["map"])
        1.0
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions has {len(predictions)} images but targets has {len(targets)}"
        )
    if len(iou_thresholds) == 0 or not all(0.0 < t <= 1.0 for t in iou_thresholds):
        raise ValueError(f"iou_thresholds must be in (0, 1]; got {tuple(iou_thresholds)!r}")
    thresholds = torch.tensor(iou_thresholds, dtype=torch.float64)
    classes = sorted(
        {int(c) for item in [*predictions, *targets] for c in item["labels"].reshape(-1).tolist()}
    )
    ap = torch.full((len(thresholds), len(classes)), -1.0, dtype=torch.float64)
    for column, label in enumerate(classes):
        scores, matched, num_truth = _match_class(
            predictions, targets, label, thresholds, max_detections
        )
        if num_truth > 0:
            ap[:, column] = _average_precision(scores, matched, num_truth)
    valid = ap[0] >= 0
    per_class = torch.where(valid, ap.clamp(min=0).mean(0), torch.tensor(-1.0, dtype=ap.dtype))

    def mean(values: torch.Tensor) -> torch.Tensor:
        return values[valid].mean() if valid.any() else torch.tensor(-1.0, dtype=values.dtype)

    result = {
        "map": mean(per_class),
        "classes": torch.tensor(classes, dtype=torch.int64),
        "map_per_class": per_class,
        "ap": ap,
    }
    for name, value in (("50", 0.5), ("75", 0.75)):
        hits = torch.isclose(thresholds, torch.tensor(value, dtype=torch.float64))
        if hits.any():
            row = ap[int(hits.nonzero()[0])]
            result[f"map_{name}"] = mean(row)
            if name == "50":
                result["map_50_per_class"] = row
    return {
        key: value.float() if value.is_floating_point() else value for key, value in result.items()
    }


def _match_class(
    predictions: Sequence[Detection],
    targets: Sequence[Detection],
    label: int,
    thresholds: torch.Tensor,
    max_detections: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Scores of all detections of ``label`` and, per threshold, whether each matched a truth."""
    all_scores, all_matched, num_truth = [], [], 0
    for prediction, target in zip(predictions, targets):
        keep = prediction["labels"] == label
        scores = prediction["scores"][keep].double()
        order = torch.argsort(scores, descending=True, stable=True)[:max_detections]
        boxes, scores = prediction["boxes"][keep][order].double(), scores[order]
        truth = target["boxes"][target["labels"] == label].double()
        num_truth += len(truth)
        matched = torch.zeros(len(thresholds), len(boxes), dtype=torch.bool)
        if len(truth) and len(boxes):
            iou = box_iou(boxes, truth)  # (detections, truths)
            for t, threshold in enumerate(thresholds):
                free = torch.ones(len(truth), dtype=torch.bool)
                for d in range(len(boxes)):  # in score order: the better detection claims first
                    candidates = torch.where(free, iou[d], torch.tensor(-1.0, dtype=iou.dtype))
                    best = int(candidates.argmax())
                    if candidates[best] >= threshold:
                        matched[t, d], free[best] = True, False
        all_scores.append(scores)
        all_matched.append(matched)
    scores = torch.cat(all_scores) if all_scores else torch.zeros(0, dtype=torch.float64)
    matched = torch.cat(all_matched, dim=1) if all_matched else torch.zeros(len(thresholds), 0)
    return scores, matched.bool(), num_truth


def _average_precision(scores: torch.Tensor, matched: torch.Tensor, num_truth: int) -> torch.Tensor:
    """COCO's 101-point interpolated AP per threshold, from matches across all images."""
    order = torch.argsort(scores, descending=True, stable=True)
    true_pos = matched[:, order].double().cumsum(1)
    false_pos = (~matched[:, order]).double().cumsum(1)
    recall = true_pos / num_truth
    precision = true_pos / (true_pos + false_pos).clamp(min=1e-12)
    # the precision envelope: best precision at this recall or any higher one
    precision = precision.flip(1).cummax(1).values.flip(1)
    points = torch.linspace(0, 1, 101, dtype=torch.float64)
    ap = torch.zeros(len(matched), dtype=torch.float64)
    for t in range(len(matched)):
        index = torch.searchsorted(recall[t].contiguous(), points, side="left")
        reached = index < recall.shape[1]
        values = torch.zeros_like(points)
        values[reached] = precision[t, index[reached]]
        ap[t] = values.mean()
    return ap


def confounder_false_positives(
    predictions: Sequence[Detection],
    targets: Sequence[Detection],
    confounder_boxes: Sequence[torch.Tensor],
    *,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Per image, the detections that fire on a known confounder instead of an object.

    A detection counts when its score is at least ``score_threshold``, it overlaps no
    ground-truth object with IoU ``>= iou_threshold`` (whatever the class), and it overlaps a
    confounder box (unlabeled look-alikes, ``Scenes.distractor_boxes``) with IoU
    ``>= iou_threshold``.

    Returns:
        ``(num_images,)`` int64 counts.
    """
    if not len(predictions) == len(targets) == len(confounder_boxes):
        raise ValueError(
            f"predictions ({len(predictions)}), targets ({len(targets)}) and confounder_boxes "
            f"({len(confounder_boxes)}) must hold the same number of images"
        )
    counts = []
    for prediction, target, confounders in zip(predictions, targets, confounder_boxes):
        boxes = prediction["boxes"][prediction["scores"] >= score_threshold].float()
        if len(boxes) == 0 or len(confounders) == 0:
            counts.append(0)
            continue
        on_object = torch.zeros(len(boxes), dtype=torch.bool)
        if len(target["boxes"]):
            on_object = (box_iou(boxes, target["boxes"].float()) >= iou_threshold).any(1)
        on_confounder = (box_iou(boxes, confounders.float()) >= iou_threshold).any(1)
        counts.append(int((on_confounder & ~on_object).sum()))
    return torch.tensor(counts, dtype=torch.int64)
