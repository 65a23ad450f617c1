"""Argument checks that raise errors naming the argument, the value and what is allowed, and
the test of a JSON number that the data loaders and the lab's run files share."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")


def check_module(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is an ``nn.Module`` (a technique's model argument).

    Example:
        >>> check_module("model", lambda x: x)
        Traceback (most recent call last):
        ...
        TypeError: model must be an nn.Module; got function
    """
    from torch import nn  # here, not above: the scikit-learn families import this module

    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module; got {type(value).__name__}")


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``value`` is a finite number in the range.

    Example:
        >>> check_number("margin", 0.5, low=0.0)
        >>> check_number("num_batches", 1, low=2, integer=True)
        Traceback (most recent call last):
        ...
        ValueError: num_batches must be an integer >= 2; got 1
    """
    kind = "an integer" if integer else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>=' if low_inclusive else '>'} {low}")
    if high is not None:
        bounds.append(f"{'<=' if high_inclusive else '<'} {high}")
    wanted = f"{name} must be {kind}" + (" " + " and ".join(bounds) if bounds else "")
    types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok_type = isinstance(value, types) and not isinstance(value, bool | np.bool_)
    if not ok_type:
        raise TypeError(f"{wanted}; got {value!r} of type {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{wanted}; got {value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ValueError(f"{wanted}; got {value!r}")


def is_json_number(value: Any) -> bool:
    """Whether a value read from JSON is a number a float can hold: not a boolean, and not an
    integer past 1e308 (JSON integers have no limit; ``float`` raises on them).

    Example:
        >>> is_json_number(0.5), is_json_number(True), is_json_number(10**400)
        (True, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True
