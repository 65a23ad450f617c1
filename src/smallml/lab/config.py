"""Typed ``--set key=value`` overrides of an experiment's ``Config`` dataclass."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal


class ConfigError(ValueError):
    """A bad ``--set``: the message is one line that names the key, the value and what is allowed."""


def field_types(config_cls: type) -> dict[str, Any]:
    """The resolved type hint of every field of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


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
        value = float(text)
        return value
    if hint is str:
        return text
    raise ValueError(f"unsupported config type {hint!r}")


def apply_overrides(config: Any, assignments: list[str]) -> Any:
    """Return a copy of ``config`` with ``key=value`` assignments applied, type-checked."""
    types_by_name = field_types(type(config))
    valid = ", ".join(f"{name} ({describe_type(t)})" for name, t in types_by_name.items())
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set {assignment!r}: expected key=value; valid keys: {valid}")
        if key not in types_by_name:
            raise ConfigError(f"--set {key}: unknown key; valid keys: {valid}")
        hint = types_by_name[key]
        try:
            changes[key] = parse_value(text.strip(), hint)
        except ValueError:
            raise ConfigError(
                f"--set {key}={text}: expected {describe_type(hint)}, got {text!r}"
            ) from None
    return dataclasses.replace(config, **changes)
