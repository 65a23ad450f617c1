"""A small convolutional classifier for small images: 8x8 digits, 28x28 MNIST, 32x32 CIFAR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_number


class PoolAbove(nn.Module):
    """2x2 max pooling (``ceil_mode``) repeated while the map's smaller side exceeds ``size``.

    The identity on maps of at most ``size`` pixels, so a network that inserts it still computes
    exactly what it did on small inputs, and pools more on larger ones. It has no parameters.

    Args:
        size: the largest side left as it is.

    Example:
        >>> PoolAbove(16)(torch.zeros(1, 3, 28, 28)).shape
        torch.Size([1, 3, 14, 14])
        >>> PoolAbove(16)(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        check_number("size", size, low=1, integer=True)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` to ``(B, C, H', W')`` with ``min(H', W') <= size``."""
        while min(x.shape[-2:]) > self.size:
            x = F.max_pool2d(x, 2, ceil_mode=True)
        return x

    def extra_repr(self) -> str:
        return f"size={self.size}"


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks, global average pooling and a two-layer head.

    On 8x8 digits the first two blocks see the whole image, one 2x2 max pooling follows, and the
    last block sees 4x4. Larger inputs get more pooling stages, so that every output position
    sees about the whole object: ``PoolAbove`` halves the map after the first block while it is
    larger than 16 pixels, and again after the fixed pooling while it is larger than 4, so the
    last block works on at most 4x4 at every size (28x28 MNIST: 28, 14, 7 then 4; 32x32 CIFAR:
    32, 16, 8 then 4). Those stages have no parameters and do nothing on inputs up to 8x8: the
    digits get the same layers, initialisation and results as before they existed.

    ``features`` maps ``(B, C, H, W)`` to ``(B, feature_dim)`` for any ``H, W >= 1``, so the same
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
            PoolAbove(16),  # 28x28 and 32x32 inputs: one halving; 8x8 digits: nothing
            *block(width, 2 * width),
            nn.MaxPool2d(2, ceil_mode=True),
            PoolAbove(4),  # the last block sees at most 4x4, as on the digits
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
