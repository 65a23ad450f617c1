"""torchvision's ResNet-18 adapted to small images (8x8 digits, 32x32 CIFAR)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torchvision.models import resnet18

from mltricks._utils.checks import check_number
from mltricks.models.checkpoint import load_weights_file


def small_resnet18(
    in_channels: int = 3, num_classes: int = 10, *, weights: str | Path | None = None
) -> nn.Module:
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool, as is usual for CIFAR-sized inputs.

    The ImageNet stem (7x7 stride 2, then max-pool) shrinks a 32x32 image to 8x8 before the first
    block and an 8x8 digit to 2x2; the small stem keeps the resolution. ``model.fc`` is the
    classifier and ``model.fc.in_features`` (512) the feature size.

    Args:
        in_channels: input channels.
        num_classes: outputs of ``fc``.
        weights: optional local state-dict file for this architecture, loaded with
            ``load_weights_file`` (``torch.load(weights_only=True)``); random initialisation when None.

    Example:
        >>> import torch
        >>> from mltricks.models import small_resnet18
        >>> small_resnet18(1, 10)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    check_number("in_channels", in_channels, low=1, integer=True)
    check_number("num_classes", num_classes, low=1, integer=True)
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    if weights is not None:
        model.load_state_dict(load_weights_file(weights, what="ResNet-18 weights file"))
    return model
