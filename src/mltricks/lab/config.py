"""An experiment's ``Config``: resolved from its preset, ``--set key=value`` and its flags.

``resolve_config`` is the one way a run's configuration is made. It starts from the ``Config``
dataclass defaults, applies the preset's values, then the typed ``overrides`` of a caller, the
``--set`` assignments and the experiment's own flags (``registry.OPTIONS``, such as ``--model``),
each parsed once from its text into the field's type, and finally checks every value against
its range. Any mistake is a ``ConfigError`` whose one-line message names the key, the value and
what is allowed.

Ranges come from the field's name family unless the field declares its own with
``field(metadata=within(low, high))`` (or opts out with ``metadata=within()``):

- every number must be finite (no ``nan``, no ``inf``);
- fractions, shares, probabilities, dropout rates and quantiles (``val_fraction``,
  ``labeled_share``, ``mlm_probability``, ``dropout``, ``quantiles``) lie in [0, 1];
- integers (counts, sizes, seeds, indices) are >= 0;
- learning rates (``lr``, ``*_lr``, ``lrs``) and loss weights (``*_weight``, ``weight_decay``)
  are >= 0.

Tuples are checked element by element.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Literal

__all__ = [
    "Bounds",
    "ConfigError",
    "apply_overrides",
    "bounds_of",
    "check_config",
    "describe_type",
    "field_types",
    "parse_value",
    "resolve_config",
    "within",
]


class ConfigError(ValueError):
    """A bad ``--set``: the message is one line that names the key, the value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A closed range ``[low, high]`` for a numeric field; None leaves that side open."""

    low: float | None = None
    high: float | None = None
    what: str = ""

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"a number in [{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            text = f"a number >= {self.low:g}"
        elif self.high is not None:
            text = f"a number <= {self.high:g}"
        else:
            text = "a finite number"
        return f"{text} ({self.what})" if self.what else text


BOUNDS_KEY = "bounds"


def within(low: float | None = None, high: float | None = None, what: str = "") -> dict:
    """Field metadata declaring a field's range: ``x: float = field(default=0.5,
    metadata=within(0, 1))``; ``within()`` keeps only the finiteness check."""
    return {BOUNDS_KEY: Bounds(low, high, what)}


FRACTION = Bounds(0.0, 1.0, "a fraction")
COUNT = Bounds(0, None, "a count, size, seed or index")
NON_NEGATIVE = Bounds(0.0, None)
FINITE = Bounds()

# (name pattern, range) for float fields, first match wins; ints are counts unless declared
FLOAT_FAMILIES: tuple[tuple[re.Pattern[str], Bounds], ...] = (
    (
        re.compile(r"(^|_)(fractions?|shares?|probability|dropout|quantiles)$"),
        FRACTION,
    ),
    (re.compile(r"(^|_)lrs?(_|$)"), Bounds(0.0, None, "a learning rate")),
    (re.compile(r"(^|_)weight(_decay)?$"), Bounds(0.0, None, "a weight")),
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
        return COUNT
    return None


def check_config(config: Any, source: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigError`` when a numeric value of ``config`` is not finite or out of range.

    Args:
        config: a config dataclass instance.
        source: where each key's value came from (``"--set"``, ``"preset 'full'"``), named in
            the error; keys not in it are named as defaults.
    """
    hints = field_types(type(config))
    for field in dataclasses.fields(config):
        bounds = bounds_of(field, hints[field.name])
        value = getattr(config, field.name)
        if bounds is None or value is None:
            continue
        items = value if isinstance(value, tuple | list) else (value,)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if math.isfinite(item) and bounds.contains(item):
                continue
            where = (source or {}).get(field.name, "default")
            if isinstance(value, tuple | list):
                shown = ",".join(map(str, items))
                raise ConfigError(
                    f"{where} {field.name}={shown}: expected {bounds} each, got {item}"
                )
            raise ConfigError(f"{where} {field.name}={value}: expected {bounds}")


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


def _valid_keys(types_by_name: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} ({describe_type(t)})" for name, t in types_by_name.items())


def _parse_assignments(
    assignments: Iterable[str], types_by_name: Mapping[str, Any]
) -> dict[str, Any]:
    """``["epochs=3", "lr=1e-3"]`` -> ``{"epochs": 3, "lr": 0.001}``, parsed by field type."""
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(
                f"--set {assignment!r}: expected key=value; valid keys: {_valid_keys(types_by_name)}"
            )
        if key not in types_by_name:
            raise ConfigError(f"--set {key}: unknown key; valid keys: {_valid_keys(types_by_name)}")
        hint = types_by_name[key]
        try:
            changes[key] = parse_value(text.strip(), hint)
        except ValueError:
            raise ConfigError(
                f"--set {key}={text}: expected {describe_type(hint)}, got {text!r}"
            ) from None
    return changes


def _checked_values(
    values: Mapping[str, Any], types_by_name: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """Typed values (a preset's, a caller's) checked against the field types."""
    for key, value in values.items():
        if key not in types_by_name:
            raise ConfigError(
                f"{where} sets unknown key {key!r}; valid keys: {_valid_keys(types_by_name)}"
            )
        if not conforms(value, types_by_name[key]):
            raise ConfigError(
                f"{where} sets {key}={value!r}: expected {describe_type(types_by_name[key])}"
            )
    return dict(values)


def apply_overrides(config: Any, assignments: Iterable[str]) -> Any:
    """Return a copy of ``config`` with ``key=value`` assignments applied, type- and
    range-checked."""
    types_by_name = field_types(type(config))
    changes = _parse_assignments(assignments, types_by_name)
    config = dataclasses.replace(config, **changes)
    check_config(config, dict.fromkeys(changes, "--set"))
    return config


def resolve_config(
    module: ModuleType,
    preset: str = "quick",
    *,
    overrides: Mapping[str, Any] | None = None,
    assignments: Iterable[str] = (),
    options: Mapping[str, str] | None = None,
    option_flags: Mapping[str, str] | None = None,
) -> Any:
    """An experiment's ``Config`` for one run: defaults, then the preset, then the overrides.

    Args:
        module: the experiment module (its ``Config`` dataclass and ``PRESETS``).
        preset: the preset's name (``smoke``, ``quick``, ``full``).
        overrides: typed values by field name, from Python callers (checked like a preset).
        assignments: ``--set key=value`` texts, parsed with the field's type.
        options: experiment flags as ``{field: text}`` (``{"model_path": "m.pt"}``), applied
            where ``Config`` has the field and ignored elsewhere.
        option_flags: ``{field: flag}`` to name a flag (``--model``) in errors.

    Returns:
        The ``Config`` instance, every value of the field's type and inside its range.

    Raises:
        ConfigError: an unknown preset or key, a value of the wrong type, or out of range.
    """
    config_cls = module.Config
    name = module.__name__.rpartition(".")[2]
    if preset not in module.PRESETS:
        raise ConfigError(
            f"{name}: unknown preset {preset!r}; choose from {', '.join(module.PRESETS)}"
        )
    types_by_name = field_types(config_cls)
    source: dict[str, str] = {}
    changes = _checked_values(
        module.PRESETS[preset].config, types_by_name, f"{name}: preset {preset!r}"
    )
    source.update(dict.fromkeys(changes, f"preset {preset!r}"))
    typed = _checked_values(overrides or {}, types_by_name, f"{name}: overrides")
    changes.update(typed)
    source.update(dict.fromkeys(typed, "override"))
    parsed = _parse_assignments(assignments, types_by_name)
    changes.update(parsed)
    source.update(dict.fromkeys(parsed, "--set"))
    for field, text in (options or {}).items():
        if field in types_by_name:
            flag = (option_flags or {}).get(field, f"--set {field}")
            try:
                changes[field] = parse_value(text, types_by_name[field])
            except ValueError:
                raise ConfigError(
                    f"{flag} {text}: expected {describe_type(types_by_name[field])}"
                ) from None
            source[field] = flag
    config = config_cls(**changes)
    check_config(config, source)
    return config
