"""A small U-Net whose down path can be pretrained as a classifier and then transferred.

U-Net (Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597): the down path (encoder)
halves the resolution and doubles the channels block by block; the up path (decoder) doubles the
resolution and halves the channels, concatenating the encoder's features of the same resolution
(skip connections, which carry detail and let gradients reach the early layers). The original
project's transfer recipe (docs/systems/unet-transfer.md): pretrain the encoder with a
classification head (``classify``), then fine-tune on segmentation in two stages, decoder only
with the encoder frozen (``freeze_encoder``), then end to end, often with a smaller learning rate
for the encoder (``param_groups``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_number


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNetEncoder(nn.Module):
    """The down path: a full-resolution block, then ``depth`` blocks of 2x2 max pooling and a
    double convolution with twice the channels. ``forward`` returns every block's output,
    full resolution first and the bottleneck ``(B, base * 2**depth, H / 2**depth, W / 2**depth)``
    last."""

    def __init__(self, in_channels: int, base_channels: int, depth: int) -> None:
        super().__init__()
        channels = [base_channels * 2**level for level in range(depth + 1)]
        self.blocks = nn.ModuleList([_double_conv(in_channels, channels[0])])
        for level in range(1, depth + 1):
            self.blocks.append(
                nn.Sequential(nn.MaxPool2d(2), _double_conv(channels[level - 1], channels[level]))
            )
        self.out_channels = channels[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class UNetUpBlock(nn.Module):
    """Double the resolution with a transposed convolution, concatenate the skip features of that
    resolution, and mix them with a double convolution that halves the channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = _double_conv(in_channels, in_channels // 2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net for per-pixel classification, with an encoder that transfers from classification.

    Args:
        in_channels: channels of the input images.
        num_classes: classes per pixel (background included); ``forward`` gives their logits.
        base_channels: channels of the full-resolution block; each level down doubles them.
        depth: down (and up) blocks: the bottleneck is ``2**depth`` times smaller than the input.
        num_pretrain_classes: outputs of the classification head used by ``classify`` (default
            ``num_classes``).
        pad: inputs whose height or width is not a multiple of ``2**depth`` are zero-padded at
            the bottom and right and the output is cropped back (True), or rejected (False).

    Attributes:
        encoder: the down path (``UNetEncoder``), the part that is pretrained and transferred.
        decoder: the up blocks; ``head`` the 1x1 convolution to class logits.
        classifier: global average pooling of the bottleneck and a linear layer (pretraining).

    Example:
        >>> model = UNet(1, 3, base_channels=8, depth=2)
        >>> model(torch.zeros(2, 1, 30, 30)).shape, model.classify(torch.zeros(2, 1, 30, 30)).shape
        (torch.Size([2, 3, 30, 30]), torch.Size([2, 3]))
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        base_channels: int = 16,
        depth: int = 3,
        num_pretrain_classes: int | None = None,
        pad: bool = True,
    ) -> None:
        super().__init__()
        check_number("in_channels", in_channels, low=1, integer=True)
        check_number("num_classes", num_classes, low=1, integer=True)
        check_number("base_channels", base_channels, low=1, integer=True)
        check_number("depth", depth, low=1, integer=True)
        if num_pretrain_classes is not None:
            check_number("num_pretrain_classes", num_pretrain_classes, low=1, integer=True)
        self.in_channels, self.depth, self.pad = in_channels, depth, pad
        self.encoder = UNetEncoder(in_channels, base_channels, depth)
        self.decoder = nn.ModuleList(
            [UNetUpBlock(base_channels * 2**level) for level in range(depth, 0, -1)]
        )
        self.head = nn.Conv2d(base_channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(self.encoder.out_channels, num_pretrain_classes or num_classes),
        )
        self._encoder_frozen = False

    # --- forward passes ---------------------------------------------------------------------

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, H, W); got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        extra_h, extra_w = -height % multiple, -width % multiple
        if extra_h or extra_w:
            if not self.pad:
                raise ValueError(
                    f"x has height {height} and width {width}, but with depth={self.depth} both "
                    f"must be multiples of {multiple}; resize the images or build UNet(pad=True)"
                )
            x = F.pad(x, (0, extra_w, 0, extra_h))
        return x, height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits ``(B, num_classes, H, W)`` for images ``(B, C, H, W)``."""
        x, height, width = self._padded(x)
        *skips, out = self.encoder(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            out = block(out, skip)
        return self.head(out)[..., :height, :width]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Image-level logits ``(B, num_pretrain_classes)`` from the encoder alone."""
        x, _, _ = self._padded(x)
        return self.classifier(self.encoder(x)[-1])

    # --- transfer helpers -------------------------------------------------------------------

    @property
    def encoder_frozen(self) -> bool:
        """Whether ``freeze_encoder`` is in force."""
        return self._encoder_frozen

    def freeze_encoder(self) -> UNet:
        """Stop the encoder's gradients and keep its BatchNorm statistics fixed (eval mode, also
        through later ``train()`` calls) until ``unfreeze_encoder``."""
        self._encoder_frozen = True
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.encoder.eval()
        return self

    def unfreeze_encoder(self) -> UNet:
        """Train the encoder again (gradients on; its mode follows the model's)."""
        self._encoder_frozen = False
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(True)
        self.encoder.train(self.training)
        return self

    def train(self, mode: bool = True) -> UNet:
        """Set the mode; a frozen encoder stays in eval mode, so training loops that call
        ``model.train()`` every epoch do not update its BatchNorm statistics."""
        super().train(mode)
        if self._encoder_frozen:
            self.encoder.eval()
        return self

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the up path and the segmentation head (not the classifier)."""
        yield from self.decoder.parameters()
        yield from self.head.parameters()

    def param_groups(self, *, encoder_lr: float, decoder_lr: float) -> list[dict]:
        """Optimizer parameter groups with separate learning rates, e.g.
        ``torch.optim.Adam(model.param_groups(encoder_lr=1e-4, decoder_lr=1e-3))``. Frozen
        encoder parameters are left out; the classification head is never included."""
        check_number("encoder_lr", encoder_lr, low=0.0)
        check_number("decoder_lr", decoder_lr, low=0.0)
        groups = [{"params": list(self.decoder_parameters()), "lr": decoder_lr, "name": "decoder"}]
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        if encoder:
            groups.insert(0, {"params": encoder, "lr": encoder_lr, "name": "encoder"})
        return groups
