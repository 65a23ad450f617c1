"""Sinusoidal positional encoding of Transformers (Vaswani et al. 2017).

https://arxiv.org/abs/1706.03762, section 3.5:

    PE[p, 2i]     = sin(p / base^(2i / dim))
    PE[p, 2i + 1] = cos(p / base^(2i / dim))

Dimension ``j`` has frequency ``1 / base^(2 * floor(j / 2) / dim)``: each sin/cos pair shares one
frequency, so moving ``k`` positions rotates every pair by the angle ``k * frequency``, and
``PE(p + k) = R_k PE(p)`` with one rotation ``R_k`` for all ``p``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mltricks._utils.checks import check_number


def sinusoidal_positional_encoding(
    num_positions: int,
    dim: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(num_positions, dim)`` table of sinusoidal positional encodings.

    Args:
        num_positions: number of positions ``0 .. num_positions - 1``.
        dim: encoding dimension; must be even so that every sine has its cosine.
        base: the wavelength base (10,000 in the paper).

    Returns:
        ``(num_positions, dim)`` tensor: sin on even dimensions, cos on odd ones. Every row has
        norm ``sqrt(dim / 2)``.

    Example:
        >>> pe = sinusoidal_positional_encoding(4, 6)
        >>> pe[0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    """
    check_number("num_positions", num_positions, low=1, integer=True)
    check_number("dim", dim, low=2, integer=True)
    if dim % 2:
        raise ValueError(f"dim must be even (sin and cos come in pairs); got {dim}")
    check_number("base", base, low=1.0, low_inclusive=False)
    positions = torch.arange(num_positions, dtype=torch.float64, device=device)[:, None]
    pair = torch.arange(0, dim, 2, dtype=torch.float64, device=device)  # 2 * floor(j / 2)
    frequencies = torch.exp(-math.log(base) * pair / dim)  # (dim / 2,)
    angles = positions * frequencies  # (num_positions, dim / 2)
    encoding = torch.empty(num_positions, dim, dtype=torch.float64, device=device)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the sinusoidal encoding to a sequence of embeddings ``(B, T, dim)``.

    The table is a non-persistent buffer of ``max_positions`` rows, computed once.

    Example:
        >>> layer = SinusoidalPositionalEncoding(dim=8, max_positions=16)
        >>> layer(torch.zeros(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    encoding: torch.Tensor

    def __init__(self, dim: int, max_positions: int = 4096, base: float = 10000.0) -> None:
        super().__init__()
        self.dim, self.max_positions, self.base = dim, max_positions, base
        self.register_buffer(
            "encoding", sinusoidal_positional_encoding(max_positions, dim, base), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + PE[:T]`` for ``x`` of shape ``(B, T, dim)``."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must end in dim={self.dim}; got shape {tuple(x.shape)}")
        length = x.shape[-2]
        if length > self.max_positions:
            raise ValueError(f"sequence length {length} exceeds max_positions={self.max_positions}")
        return x + self.encoding[:length].to(x.dtype)
