"""A torchvision Faster R-CNN ready for fine-tuning on ``num_classes`` object classes.

Faster R-CNN (Ren et al. 2015, https://arxiv.org/abs/1506.01497): a region proposal network
proposes boxes on backbone features, and a box head classifies and refines each proposal. The
builder is torchvision's (``fasterrcnn_mobilenet_v3_large_fpn``, ``fasterrcnn_resnet50_fpn``)
with nothing downloaded, resized where the arguments differ from torchvision's defaults (anchor
sizes, box-head width), and torchvision's fine-tuning recipe on top: load the checkpoint, then
put a new box predictor for ``num_classes + 1`` outputs (background is class 0). ``weights`` is
a local file (for instance torchvision's COCO checkpoint, saved where the user keeps it); without
it every weight is random.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torchvision.models.detection import (
    FasterRCNN,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from mltricks._utils.checks import check_choice, check_number
from mltricks.models.checkpoint import load_weights_file

# backbone -> (layers that can be trained, feature maps, whether each map gets all anchor sizes)
BACKBONES = {"mobilenet_v3": (6, 3, True), "resnet50": (5, 5, False), "small": (0, 1, True)}
# torchvision's builders (random weights: weights=None, weights_backbone=None)
_BUILDERS: dict[str, Callable[..., FasterRCNN]] = {
    "mobilenet_v3": fasterrcnn_mobilenet_v3_large_fpn,
    "resnet50": fasterrcnn_resnet50_fpn,
}
# the same backbones as torchvision's pretrained builders make them: frozen BatchNorm, the
# stages below the top ``trainable`` ones frozen
_PRETRAINED_BACKBONES: dict[str, Callable[[int], nn.Module]] = {
    "mobilenet_v3": lambda trainable: mobilenet_backbone(
        backbone_name="mobilenet_v3_large",
        weights=None,
        fpn=True,
        norm_layer=FrozenBatchNorm2d,
        trainable_layers=trainable,
    ),
    "resnet50": lambda trainable: resnet_fpn_backbone(
        backbone_name="resnet50",
        weights=None,
        norm_layer=FrozenBatchNorm2d,
        trainable_layers=trainable,
    ),
}
ASPECT_RATIOS = (0.5, 1.0, 2.0)
_RESOLUTION = 7  # torchvision's RoI pooling output size
_FPN_CHANNELS = 256  # channels of every feature map of torchvision's FPN backbones
_PREDICTOR = "roi_heads.box_predictor.cls_score.weight"


def faster_rcnn(
    num_classes: int,
    *,
    backbone: str = "mobilenet_v3",
    weights: str | Path | None = None,
    trainable_backbone_layers: int = 3,
    min_size: int = 800,
    max_size: int = 1333,
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
    box_batch_size_per_image: int = 512,
    representation_size: int = 1024,
    proposals: tuple[int, int] = (2000, 1000),
) -> FasterRCNN:
    """Build a Faster R-CNN for ``num_classes`` object classes plus background.

    Args:
        num_classes: object classes, background excluded; targets use labels ``1..num_classes``.
        backbone: ``"mobilenet_v3"`` (MobileNetV3-Large FPN, torchvision's
            ``fasterrcnn_mobilenet_v3_large_fpn``), ``"resnet50"`` (``fasterrcnn_resnet50_fpn``)
            or ``"small"`` (``small_backbone``: six 3x3 convolutions to one stride-8 map, for
            training from random weights on small images and a CPU, where MobileNetV3 learns
            slowly; no published checkpoint exists for it).
        weights: a local state-dict file (``torch.save(model.state_dict())``) of the same
            architecture: torchvision's COCO checkpoint (its 91-class predictor is replaced) or a
            model fine-tuned for ``num_classes`` (loaded as is). None: random initialisation.
        trainable_backbone_layers: with ``weights``, how many backbone stages, counted from the
            top, are trained (0 to 6 for mobilenet_v3, 0 to 5 for resnet50); the others are
            frozen and all BatchNorm layers are frozen, as in torchvision. Without weights the
            whole backbone trains with ordinary BatchNorm (torchvision's rule: freezing random
            layers helps nothing). The small backbone always trains whole.
        min_size: the model's transform resizes each image so that its shorter side is
            ``min_size`` (unless the longer one would exceed ``max_size``).
        max_size: longest side after resizing.
        anchor_sizes: anchor box sides in pixels of the resized image. mobilenet_v3 uses all of
            them on each of its 3 feature maps; resnet50 needs exactly 5, one per FPN level.
            Keep 5 sizes to load a torchvision checkpoint (the RPN head has one output per anchor).
        box_batch_size_per_image: proposals sampled per image to train the box head.
        representation_size: width of the box head's two fully connected layers (torchvision:
            1024, which a checkpoint needs). Smaller widths train much faster on a CPU: with 1024
            the first layer alone holds 12.8 million weights and dominates the step time.
        proposals: proposals kept after non-maximum suppression, ``(training, testing)``.

    Returns:
        A ``torchvision.models.detection.FasterRCNN``: in train mode ``model(images, targets)``
        returns a dict of losses; in eval mode ``model(images)`` returns per image a dict with
        ``boxes (n, 4)``, ``labels (n,)`` in ``1..num_classes`` and ``scores (n,)``.

    Example:
        >>> from mltricks.detection import faster_rcnn
        >>> model = faster_rcnn(4, min_size=128, max_size=128)
        >>> model.roi_heads.box_predictor.cls_score.out_features
        5
    """
    check_number("num_classes", num_classes, low=1, integer=True)
    check_choice("backbone", backbone, tuple(BACKBONES))
    max_layers, num_levels, all_sizes_per_level = BACKBONES[backbone]
    if backbone != "small":
        check_number(
            "trainable_backbone_layers",
            trainable_backbone_layers,
            low=0,
            high=max_layers,
            integer=True,
        )
    check_number("min_size", min_size, low=1, integer=True)
    check_number("max_size", max_size, low=min_size, integer=True)
    check_number("box_batch_size_per_image", box_batch_size_per_image, low=1, integer=True)
    check_number("representation_size", representation_size, low=1, integer=True)
    _check_sizes(anchor_sizes, backbone, num_levels, all_sizes_per_level)
    if len(proposals) != 2:
        raise ValueError(f"proposals must be a (training, testing) pair; got {proposals!r}")
    for value in proposals:
        check_number("proposals", value, low=1, integer=True)

    state = _load(weights) if weights is not None else None
    # a checkpoint keeps its own predictor until it is loaded; ours comes after
    classes = num_classes + 1 if state is None else int(state[_PREDICTOR].shape[0])
    options: dict[str, Any] = {
        "min_size": min_size,
        "max_size": max_size,
        "box_batch_size_per_image": box_batch_size_per_image,
        "rpn_pre_nms_top_n_train": proposals[0],
        "rpn_post_nms_top_n_train": proposals[0],
        "rpn_pre_nms_top_n_test": proposals[1],
        "rpn_post_nms_top_n_test": proposals[1],
    }
    if backbone == "small":
        body = small_backbone()
        channels = cast(int, body.out_channels)
        model = FasterRCNN(
            body,
            box_head=TwoMLPHead(channels * _RESOLUTION**2, representation_size),
            box_predictor=FastRCNNPredictor(representation_size, classes),
            rpn_anchor_generator=AnchorGenerator((tuple(anchor_sizes),), (ASPECT_RATIOS,)),
            box_roi_pool=MultiScaleRoIAlign(["0"], _RESOLUTION, sampling_ratio=2),
            **options,
        )
    else:
        # the box head goes in at its width (torchvision's 1024 would cost a 12.8-million-weight
        # initialisation to throw away); the predictor the builder sizes for 1024 is replaced
        model = _BUILDERS[backbone](
            weights=None,
            weights_backbone=None,
            num_classes=classes,
            box_head=TwoMLPHead(_FPN_CHANNELS * _RESOLUTION**2, representation_size),
            **options,
        )
        model.roi_heads.box_predictor = FastRCNNPredictor(representation_size, classes)
        if state is not None:
            model.backbone = _PRETRAINED_BACKBONES[backbone](trainable_backbone_layers)
        if all_sizes_per_level:
            sizes = (tuple(anchor_sizes),) * num_levels
        else:
            sizes = tuple((size,) for size in anchor_sizes)
        if tuple(model.rpn.anchor_generator.sizes) != sizes:
            # other anchors than torchvision's: an RPN head with one output per anchor
            anchors = AnchorGenerator(sizes, (ASPECT_RATIOS,) * num_levels)
            model.rpn.anchor_generator = anchors
            model.rpn.head = RPNHead(_FPN_CHANNELS, anchors.num_anchors_per_location()[0])
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(
                f"weights '{weights}' do not fit a Faster R-CNN with backbone={backbone!r} and "
                f"{len(anchor_sizes)} anchor sizes and representation_size={representation_size}: "
                f"{error}"
            ) from None
    if classes != num_classes + 1:
        # torchvision's fine-tuning recipe: a fresh predictor for our classes + background
        model.roi_heads.box_predictor = FastRCNNPredictor(representation_size, num_classes + 1)
    return model


def small_backbone(width: int = 32) -> nn.Sequential:
    """Six 3x3 convolutions with BatchNorm and ReLU, three of stride 2: a ``(B, 4 * width,
    H / 8, W / 8)`` feature map, ``out_channels`` set as torchvision's ``FasterRCNN`` expects."""
    layers: list[nn.Module] = []
    channels = 3
    for out in (width, 2 * width, 4 * width):
        for stride in (2, 1):
            layers += [
                nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
    body = nn.Sequential(*layers)
    body.out_channels = channels  # type: ignore[assignment]  # what FasterRCNN reads
    return body


def _check_sizes(sizes: tuple[int, ...], backbone: str, levels: int, all_per_level: bool) -> None:
    if len(sizes) == 0 or (not all_per_level and len(sizes) != levels):
        wanted = "at least one size" if all_per_level else f"exactly {levels} sizes"
        raise ValueError(f"anchor_sizes for backbone={backbone!r} needs {wanted}; got {sizes!r}")
    for size in sizes:
        check_number("anchor_sizes", size, low=1, integer=True)


def _load(weights: str | Path) -> dict[str, torch.Tensor]:
    path = Path(weights).expanduser()
    state = load_weights_file(path, what="Faster R-CNN weights file")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # torchvision's reference scripts save {"model": ..., ...}
    if not isinstance(state, dict) or _PREDICTOR not in state:
        raise ValueError(
            f"weights '{path}' are not a Faster R-CNN state dict (no '{_PREDICTOR}' entry)"
        )
    return state
