"""A small convolutional classifier for small images (8x8 digits up to 32x32 crops)."""

from __future__ import annotations

import torch
from torch import nn

from smallml._utils.checks import check_number


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks, global average pooling and a two-layer head.

    ``features`` maps ``(B, C, H, W)`` to ``(B, feature_dim)`` for any ``H, W >= 2``, so the same
    network serves 8x8 digits and larger crops, and wrappers (MIMO, attention MIL) can reuse it.

    Args:
        in_channels: channels of the input images.
        num_classes: outputs of the head.
        width: channels of the first block (the next two have ``2 * width``).
        dropout: dropout probability before each layer of the head (0 disables it).
        batch_norm: BatchNorm after each convolution.

    Example:
        >>> model = SmallCNN(1, 10)
        >>> model(torch.zeros(4, 1, 8, 8)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        width: int = 32,
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        check_number("in_channels", in_channels, low=1, integer=True)
        check_number("num_classes", num_classes, low=1, integer=True)
        check_number("width", width, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)

        def block(cin: int, cout: int) -> list[nn.Module]:
            norm: nn.Module = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), norm, nn.ReLU()]

        self.feature_dim = 2 * width
        self.features = nn.Sequential(
            *block(in_channels, width),
            *block(width, 2 * width),
            nn.MaxPool2d(2, ceil_mode=True),
            *block(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.feature_dim, 2 * width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(2 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, C, H, W)``."""
        return self.head(self.features(x))
