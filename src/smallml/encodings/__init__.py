"""Positional encodings."""

from smallml.encodings.positional_encoding import (
    SinusoidalPositionalEncoding,
    sinusoidal_positional_encoding,
)

__all__ = ["SinusoidalPositionalEncoding", "sinusoidal_positional_encoding"]
