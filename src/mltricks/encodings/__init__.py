"""Positional encodings, each a function and its module twin (as timm's layers).

Return convention: the function returns the encoding table itself, ``(num_positions, dim)``
(``sinusoidal_positional_encoding``); the module applies it to a batch ``(B, L, dim)`` and
returns a tensor of the same shape.
"""

from mltricks.encodings.positional_encoding import (
    SinusoidalPositionalEncoding,
    sinusoidal_positional_encoding,
)

__all__ = ["SinusoidalPositionalEncoding", "sinusoidal_positional_encoding"]
