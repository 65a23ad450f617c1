"""Object detection on top of torchvision: a Faster R-CNN builder, target checks and mAP.

The family's contract is torchvision's: images are a list of ``(C, H, W)`` float tensors in
[0, 1] (sizes may differ); a target is ``{"boxes": (n, 4) float32 x1, y1, x2, y2 in pixels,
"labels": (n,) int64}`` with object classes from 1 (0 is background); an image without objects
has ``boxes`` of shape ``(0, 4)`` and trains as a negative. Predictions add ``"scores"``.

Return convention: ``faster_rcnn`` returns the torchvision model (its own returns: a loss dict
in training mode, a list of prediction dicts in eval mode); evaluation functions return a dict
of tensors keyed by metric name (``mean_average_precision``: ``map``, ``map_50``, ...).
"""

from mltricks.detection.evaluation import confounder_false_positives, mean_average_precision
from mltricks.detection.faster_rcnn import faster_rcnn
from mltricks.detection.targets import collate_detection, validate_targets

__all__ = [
    "collate_detection",
    "confounder_false_positives",
    "faster_rcnn",
    "mean_average_precision",
    "validate_targets",
]
