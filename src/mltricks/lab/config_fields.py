"""What a ``Config`` field declares and holds: its range, whether it applies to ``--data``
only, a path that must exist, and its type (text from ``--set`` parsed into it, a preset's value
checked against it).

Ranges come from the field's name family unless the field declares its own with
``field(metadata=within(low, high))`` (or opts out with ``metadata=within()``):

- every number must be finite (no ``nan``, no ``inf``);
- held-out shares (``val_fraction``, ``holdout_fraction``, ``test_fraction``,
  ``validation_fraction``) lie in (0, 1): both parts of the split must be non-empty;
- labeled shares (``fractions``, ``labeled_share``, ``sweep_shares``) lie in (0, 1];
- other fractions, shares, probabilities, dropout rates and quantiles (``mlm_probability``,
  ``dropout``, ``quantiles``) lie in [0, 1];
- budgets and sizes (``epochs``, ``*_epochs``, ``steps``, ``*_steps``, ``*_iterations``,
  ``batch_size``, ``*_batch_size``, ``width``, ``*_repeats``, ``labeled_per_class``,
  ``samples_per_class``) are >= 1: 0 would train nothing and still report a result;
- other integers (counts, sizes, seeds, indices) are >= 0;
- learning rates (``lr``, ``*_lr``, ``lrs``) and loss weights (``*_weight``, ``weight_decay``)
  are >= 0.

Tuples are checked element by element.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Config:
    ...     epochs: int = 3
    ...     offset: float = field(default=0.0, metadata=within(-1, 1))
    >>> hints = field_types(Config)
    >>> [str(bounds_of(f, hints[f.name])) for f in dataclasses.fields(Config)]
    ['a number >= 1 (a budget or size)', 'a number in [-1, 1]']
    >>> parse_value("0.5", hints["offset"])
    0.5
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal

__all__ = [
    "Bounds",
    "bounds_of",
    "conforms",
    "data_default",
    "data_only",
    "describe_type",
    "existing_path",
    "field_types",
    "is_data_only",
    "parse_value",
    "within",
]


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A range ``[low, high]`` for a numeric field; None leaves that side open, ``low_open`` /
    ``high_open`` exclude that end."""

    low: float | None = None
    high: float | None = None
    what: str = ""
    low_open: bool = False
    high_open: bool = False

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None:
            empty = self.low > self.high or (
                self.low == self.high and (self.low_open or self.high_open)
            )
            if empty:
                raise ValueError(
                    f"within({self.low:g}, {self.high:g}): the range is empty; give low <= high"
                )

    def contains(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"a number in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low is not None:
            text = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"a number {'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = "a finite number"
        return f"{text} ({self.what})" if self.what else text


BOUNDS_KEY = "bounds"
DATA_ONLY_KEY = "data_only"
DATA_DEFAULT_KEY = "data_default"
PATH_KEY = "existing_path"


def within(
    low: float | None = None,
    high: float | None = None,
    what: str = "",
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> dict:
    """Field metadata declaring a field's range: ``x: float = field(default=0.5,
    metadata=within(0, 1))``; ``within()`` keeps only the finiteness check.

    Raises:
        ValueError: the range is empty (``within(1, 0)``, ``within(1, 1, low_open=True)``).
    """
    return {BOUNDS_KEY: Bounds(low, high, what, low_open, high_open)}


def data_only() -> dict:
    """Field metadata: the field applies to ``--data`` only (a cap on the images read, a CSV
    column); ``--set`` of it without ``--data`` is refused. Combine with ``|``."""
    return {DATA_ONLY_KEY: True}


def data_default(value: Any) -> dict:
    """Field metadata: the field's default with ``--data`` (``recalibrate_bn: bool =
    field(default=False, metadata=data_default(True))``); any preset or ``--set`` wins."""
    return {DATA_DEFAULT_KEY: value}


def existing_path(what: str, *, folder: bool = False) -> dict:
    """Field metadata: the field, when not None, names a file (a folder when ``folder``) that
    must exist when the config is resolved; ``what`` says what it should hold."""
    return {PATH_KEY: (what, folder)}


def is_data_only(field: dataclasses.Field) -> bool:
    """Whether a config field applies to ``--data`` only (``data_only()``)."""
    return bool(field.metadata.get(DATA_ONLY_KEY))


FRACTION = Bounds(0.0, 1.0, "a fraction")
HELD_OUT = Bounds(0.0, 1.0, "a held-out share: both parts non-empty", True, True)
LABELED = Bounds(0.0, 1.0, "a labeled share", low_open=True)
COUNT = Bounds(0, None, "a count, size, seed or index")
BUDGET = Bounds(1, None, "a budget or size")
NON_NEGATIVE = Bounds(0.0, None)
FINITE = Bounds()

# (name pattern, range) for float fields, first match wins
FLOAT_FAMILIES: tuple[tuple[re.Pattern[str], Bounds], ...] = (
    (re.compile(r"(^|_)(val|holdout|test|validation)_fraction$"), HELD_OUT),
    (re.compile(r"^(fractions|labeled_share|sweep_shares)$"), LABELED),
    (
        re.compile(r"(^|_)(fractions?|shares?|probability|dropout|quantiles)$"),
        FRACTION,
    ),
    (re.compile(r"(^|_)lrs?(_|$)"), Bounds(0.0, None, "a learning rate")),
    (re.compile(r"(^|_)weight(_decay)?$"), Bounds(0.0, None, "a weight")),
)
# integer fields that must be positive; the other ints are counts (>= 0)
BUDGET_FAMILY = re.compile(
    r"(^|_)(epochs|steps|iterations|batch_size|repeats)$|^(width|labeled_per_class|"
    r"samples_per_class)$"
)


def field_types(config_cls: type) -> dict[str, Any]:
    """The resolved type hint of every field of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _scalar_types(hint: Any) -> set[type]:
    """The scalar types a hint can hold (``tuple[float, ...] | None`` -> ``{float}``)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, tuple, list):
        return set().union(*(_scalar_types(a) for a in typing.get_args(hint) if a is not Ellipsis))
    if origin is Literal:
        return {type(a) for a in typing.get_args(hint)}
    return {hint} if isinstance(hint, type) else set()


def bounds_of(field: dataclasses.Field, hint: Any) -> Bounds | None:
    """The range of a numeric field (declared in its metadata, or by its name family);
    None for fields that hold no numbers."""
    if BOUNDS_KEY in field.metadata:
        return field.metadata[BOUNDS_KEY]
    if typing.get_origin(hint) is Literal:
        return None
    scalars = _scalar_types(hint)
    if float in scalars:
        for pattern, family in FLOAT_FAMILIES:
            if pattern.search(field.name):
                return family
        return FINITE
    if int in scalars:
        return BUDGET if BUDGET_FAMILY.search(field.name) else COUNT
    return None


def describe_type(hint: Any) -> str:
    """A short readable name of a type hint (``int``, ``float | None``, ``'a' | 'b'``)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_type(a) for a in typing.get_args(hint))
    if origin in (tuple, list):
        args = typing.get_args(hint)
        inner = describe_type(args[0]) if args else "str"
        return f"comma-separated {inner}s"
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def parse_value(text: str, hint: Any) -> Any:
    """Convert ``text`` to ``hint``; raise ``ValueError`` when it does not fit."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        for allowed in typing.get_args(hint):
            try:
                if parse_value(text, type(allowed)) == allowed:
                    return allowed
            except ValueError:
                continue
        raise ValueError(text)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(text, arg)
            except ValueError:
                continue
        raise ValueError(text)
    if origin in (tuple, list):
        item_types = [a for a in typing.get_args(hint) if a is not Ellipsis] or [str]
        items = [item.strip() for item in text.split(",") if item.strip()]
        parsed = [parse_value(item, item_types[0]) for item in items]
        return tuple(parsed) if origin is tuple else parsed
    if hint is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    if hint is str:
        return text
    raise ValueError(f"unsupported config type {hint!r}")


def conforms(value: Any, hint: Any) -> bool:
    """Whether a Python value fits a type hint (a preset's or a caller's typed value)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in typing.get_args(hint))
    if origin in (tuple, list):
        item_types = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if not isinstance(value, tuple | list):
            return False
        if len(item_types) > 1 and Ellipsis not in typing.get_args(hint):
            return len(value) == len(item_types) and all(
                conforms(v, t) for v, t in zip(value, item_types, strict=True)
            )
        return not item_types or all(conforms(v, item_types[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True
