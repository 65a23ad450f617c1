"""The LeNet of PyTorch's FGSM tutorial: the standard small CNN that attacks are measured on."""

from __future__ import annotations

import torch
from torch import nn

from mltricks._utils.checks import check_number


class LeNet(nn.Module):
    """Two 5x5 convolutions (10 and 20 channels), each followed by 2x2 max pooling and a ReLU,
    2-d dropout after the second, then two linear layers (50 hidden units) with dropout between.

    The network of PyTorch's adversarial-example tutorial
    (<https://pytorch.org/tutorials/beginner/fgsm_tutorial.html>), where FGSM lowers its MNIST
    test accuracy from 0.981 to 0.943 at eps 0.05 and 0.851 at eps 0.1: a baseline of what a
    standard small network keeps under an attack. On 28x28 inputs without padding it is that
    network layer for layer (320 features, 21,840 parameters); it returns logits rather than
    the tutorial's log-probabilities (the same argmax, cross-entropy and input gradients).
    Inputs too small for two unpadded 5x5 convolutions (8x8 digits) take ``padding=2``, which
    keeps each convolution's output the size of its input.

    Args:
        in_channels: channels of the input images.
        num_classes: outputs of the last layer.
        image_size: height and width of the inputs (square), which fix the first linear
            layer's size.
        padding: zero padding of both convolutions (0 as in the tutorial; 2 keeps sizes).
        dropout: probability of both dropout layers (0.5 as in the tutorial; 0 disables them).

    Raises:
        ValueError: an argument out of range, or an ``image_size`` that two convolutions and
            poolings with this ``padding`` reduce to nothing (naming both).

    Example:
        >>> model = LeNet(1, 10)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> LeNet(1, 10, image_size=8, padding=2)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        image_size: int = 28,
        padding: int = 0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_number("in_channels", in_channels, low=1, integer=True)
        check_number("num_classes", num_classes, low=1, integer=True)
        check_number("image_size", image_size, low=1, integer=True)
        check_number("padding", padding, low=0, integer=True)
        check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
        side = image_size
        for _ in range(2):  # a 5x5 convolution, then 2x2 pooling (floor, as the tutorial's)
            side = (side + 2 * padding - 4) // 2
            if side < 1:
                raise ValueError(
                    f"image_size={image_size} with padding={padding} leaves no pixels after "
                    "LeNet's two 5x5 convolutions and 2x2 poolings; use padding=2 for inputs "
                    "smaller than 16 pixels"
                )
        self.image_size = image_size
        self.feature_dim = 20 * side * side
        # the tutorial's order: conv, pool, ReLU; conv, dropout, pool, ReLU
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 10, 5, padding=padding),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, 5, padding=padding),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(self.feature_dim, 50),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(50, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, C, image_size, image_size)``."""
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"LeNet was built for {self.image_size}x{self.image_size} images "
                f"(image_size={self.image_size}); got input of shape {tuple(x.shape)}"
            )
        return self.head(self.features(x))
