"""A convolutional autoencoder for small images, and the encoder/decoder layers and set-up it
shares with the VAE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mltricks._utils.checks import check_number


def check_shape(in_shape: Sequence[int], latent_dim: int, channels: Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``in_shape`` is ``(C, H, W)`` of positive ints, ``latent_dim``
    >= 1 and ``channels`` a non-empty sequence of positive ints."""
    if len(tuple(in_shape)) != 3:
        raise ValueError(f"in_shape must be (channels, height, width); got {tuple(in_shape)}")
    for name, value in zip(("channels", "height", "width"), in_shape):
        check_number(f"in_shape {name}", value, low=1, integer=True)
    check_number("latent_dim", latent_dim, low=1, integer=True)
    if not channels:
        raise ValueError(f"channels must name at least one conv layer; got {tuple(channels)}")
    for value in channels:
        check_number("channels", value, low=1, integer=True)


def _sizes(size: int, layers: int) -> list[int]:
    """Side lengths after each stride-2 conv (kernel 3, padding 1): ``ceil(size / 2)``."""
    sizes = [size]
    for _ in range(layers):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def conv_encoder(in_shape: Sequence[int], channels: Sequence[int]) -> tuple[nn.Sequential, int]:
    """Stride-2 3x3 convolutions with ReLU, flattened: ``(B, C, H, W) -> (B, features)``."""
    layers: list[nn.Module] = []
    previous = in_shape[0]
    for width in channels:
        layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.ReLU()]
        previous = width
    height, width = _sizes(in_shape[1], len(channels))[-1], _sizes(in_shape[2], len(channels))[-1]
    return nn.Sequential(*layers, nn.Flatten()), previous * height * width


def conv_decoder(
    in_shape: Sequence[int], channels: Sequence[int], latent_dim: int
) -> nn.Sequential:
    """The mirror of ``conv_encoder`` from a latent code: ``(B, latent_dim) -> (B, C, H, W)`` in
    (0, 1) (a sigmoid, for images in [0, 1]). Transposed convolutions undo each halving exactly,
    odd sizes included, through their ``output_padding``."""
    heights, widths = _sizes(in_shape[1], len(channels)), _sizes(in_shape[2], len(channels))
    widths_out = [*reversed(channels[:-1]), in_shape[0]]
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, channels[-1] * heights[-1] * widths[-1]),
        nn.ReLU(),
        nn.Unflatten(1, (channels[-1], heights[-1], widths[-1])),
    ]
    previous = channels[-1]
    for step, width in enumerate(widths_out):
        level = len(channels) - step  # from the smallest resolution up
        # a stride-2 transposed conv gives 2 * s - 1 (+ output_padding) pixels
        pad = (
            heights[level - 1] - (2 * heights[level] - 1),
            widths[level - 1] - (2 * widths[level] - 1),
        )
        layers.append(
            nn.ConvTranspose2d(previous, width, 3, stride=2, padding=1, output_padding=pad)
        )
        layers.append(nn.ReLU() if step < len(widths_out) - 1 else nn.Sigmoid())
        previous = width
    return nn.Sequential(*layers)


class _ConvLatentModel(nn.Module):
    """What ``Autoencoder`` and ``VAE`` share: checked shapes, the stride-2 conv body of the
    encoder, the heads a subclass puts on it (``_add_encoder``, the one hook) and the decoder
    from a ``latent_dim`` code back to images in (0, 1) (each class documents its own
    ``decode``, so that the API pages list it)."""

    def __init__(
        self, in_shape: Sequence[int], latent_dim: int, *, channels: Sequence[int] = (32, 64)
    ) -> None:
        super().__init__()
        check_shape(in_shape, latent_dim, channels)
        self.in_shape = tuple(int(v) for v in in_shape)
        self.latent_dim = int(latent_dim)
        body, features = conv_encoder(self.in_shape, channels)
        # the encoder before the decoder: the initial weights are drawn in this order
        self._add_encoder(body, features)
        self.decoder = conv_decoder(self.in_shape, tuple(channels), latent_dim)

    def _add_encoder(self, body: nn.Sequential, features: int) -> None:
        """Set the encoder's modules from the conv ``body`` (to ``(B, features)``)."""
        raise NotImplementedError


class Autoencoder(_ConvLatentModel):
    """Convolutional autoencoder: ``encoder`` to a ``latent_dim`` code, ``decoder`` back.

    The encoder (stride-2 convolutions, then a linear layer to the code) is a feature extractor
    of its own: ``nn.Sequential(model.encoder, nn.ReLU(), nn.Linear(latent_dim, k))`` is a
    classifier that starts from the pretrained features. The decoder ends in a sigmoid, for
    images in [0, 1]; train with ``F.mse_loss(model(x), x)``.

    Args:
        in_shape: ``(channels, height, width)`` of the images (any size >= 1).
        latent_dim: size of the code (>= 1).
        channels: widths of the stride-2 conv layers (each halves the resolution).

    Shapes:
        ``encode (B, C, H, W) -> (B, latent_dim)``, ``decode (B, latent_dim) -> (B, C, H, W)``,
        ``forward(x) = decode(encode(x))``.

    Example:
        >>> model = Autoencoder((1, 28, 28), latent_dim=16)
        >>> model(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 1, 28, 28])
    """

    def _add_encoder(self, body: nn.Sequential, features: int) -> None:
        self.encoder = nn.Sequential(*body, nn.Linear(features, self.latent_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, latent_dim)`` of images ``(B, C, H, W)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in (0, 1) from codes ``(B, latent_dim)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
