"""An experiment's ``Config`` for one run, resolved once: preset x data source x ``--set``.

``resolve_config`` is the one way a run's configuration is made, before the run starts; the run,
its ``summarize`` and ``config.json`` all see the same resolved values. Layers, each over the
ones before it (data-specific beats generic, the caller beats every default):

1. the ``Config`` dataclass defaults;
2. the preset's ``config`` (``Preset(config=...)``);
3. with ``--data`` only: the fields' data defaults (``field(metadata=data_default(True))``),
   the module's ``DATA_CONFIG`` (its values for a real data set, every preset), the preset's
   ``data_config``, then its ``format_config[<format>]`` for the format the path holds;
4. typed ``overrides`` of a Python caller, the ``--set`` assignments, the experiment's flags
   (``registry.OPTIONS``, such as ``--model``), each parsed once into the field's type.

Then every value is checked: its range, a path that must exist, and the module's own
``validate(cfg)`` (cross-field rules; its ``ValueError`` becomes a ``ConfigError``). With
``--data`` the path must hold one of the module's ``DATA_FORMATS`` (``data_formats``). A field
marked ``data_only()`` applies to ``--data`` only, and setting it without ``--data`` is refused.
Any mistake is a ``ConfigError`` whose one-line message names the key, the value and what is
allowed.

Field declarations (ranges by name family, ``within``, ``data_only``, ``data_default``,
``existing_path``) and types are in ``config_fields``.

Real data sets are read in part: ``DataSubset`` holds the fields every experiment that reads
images from ``--data`` includes (``max_train``, ``max_test``, ``subset_seed``), and its
docstring states the one rule for the subsets they draw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from mltricks.lab import data_formats
from mltricks.lab.config_fields import (
    DATA_DEFAULT_KEY,
    PATH_KEY,
    bounds_of,
    conforms,
    data_only,
    describe_type,
    field_types,
    is_data_only,
    parse_value,
)

__all__ = ["ConfigError", "DataSubset", "apply_overrides", "check_config", "resolve_config"]


class ConfigError(ValueError):
    """A bad ``--set``: the message is one line that names the key, the value and what is allowed."""


@dataclasses.dataclass
class DataSubset:
    """The fields of an experiment that reads images from ``--data``: how much of the data set
    a run reads, and which part. A ``Config`` includes them by inheriting
    (``class Config(DataSubset)``); the module's ``DATA_CONFIG`` and its presets'
    ``data_config`` set them (all three are ``data_only``: the bundled digits are read whole).

    The rule for seeded subsets, the one the lab follows everywhere: ``max_train`` training and
    ``max_test`` test images are a random subset (0 reads all), drawn by ``subset_seed``; None
    draws it by the run's seed, so that each seed reads other images and the interval over
    seeds includes which images were drawn. An experiment that fixes the subset sets
    ``subset_seed`` in its ``DATA_CONFIG`` and says why there.
    """

    max_train: int = dataclasses.field(default=0, metadata=data_only())
    max_test: int = dataclasses.field(default=0, metadata=data_only())
    subset_seed: int | None = dataclasses.field(default=None, metadata=data_only())

    def subset_random_state(self, seed: int) -> int:
        """The seed of this run's subsets: ``subset_seed``, or the run's ``seed`` when None."""
        return seed if self.subset_seed is None else self.subset_seed


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
    _check_paths(config, source or {})


def _check_paths(config: Any, source: Mapping[str, str]) -> None:
    """Refuse a field declared ``existing_path`` whose file or folder does not exist."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if PATH_KEY not in field.metadata or value is None:
            continue
        what, folder = field.metadata[PATH_KEY]
        path = Path(value).expanduser()
        where = source.get(field.name, f"{field.name}=")
        shown = f"{where}{value}" if where.endswith("=") else f"{where} {value}"
        if not path.exists():
            raise ConfigError(f"{shown}: no such {'folder' if folder else 'file'}; expected {what}")
        if folder and not path.is_dir():
            raise ConfigError(f"{shown}: is a file, not a folder; expected {what}")


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
    data: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Iterable[str] = (),
    options: Mapping[str, str] | None = None,
    option_flags: Mapping[str, str] | None = None,
) -> Any:
    """An experiment's ``Config`` for one run: every layer of the module docstring, checked.

    Args:
        module: the experiment module (its ``Config`` dataclass and ``PRESETS``; optionally
            ``DATA_FORMATS``, ``DATA_CONFIG`` and ``validate``).
        preset: the preset's name (``smoke``, ``quick``, ``full``).
        data: the ``--data`` path, or None for the data that ships with the install. Its
            format selects the preset's ``format_config``.
        overrides: typed values by field name, from Python callers (checked like a preset).
        assignments: ``--set key=value`` texts, parsed with the field's type.
        options: experiment flags as ``{field: text}`` (``{"model_path": "m.pt"}``), applied
            where ``Config`` has the field and ignored elsewhere.
        option_flags: ``{field: flag}`` to name a flag (``--model``) in errors.

    Returns:
        The ``Config`` instance the run uses, every value of the field's type and inside its
        range.

    Raises:
        ConfigError: an unknown preset or key, a value of the wrong type or out of range, a
            data-only field set without ``--data``, a ``--data`` path in a format the
            experiment does not read, a path field naming nothing, or a rule of the module's
            ``validate``.

    Example:
        >>> from mltricks.lab import registry
        >>> cfg = resolve_config(registry.load("fgsm"), "full", assignments=["epochs=3"])
        >>> cfg.epochs, cfg.recalibrate_bn  # the digits: no BatchNorm recalibration
        (3, False)
    """
    config_cls = module.Config
    name = module.__name__.rpartition(".")[2].replace("_", "-")
    if preset not in module.PRESETS:
        raise ConfigError(
            f"{name}: unknown preset {preset!r}; choose from {', '.join(module.PRESETS)}"
        )
    chosen = module.PRESETS[preset]
    types_by_name = field_types(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    layers: list[tuple[str, Mapping[str, Any]]] = [(f"preset {preset!r}", chosen.config)]
    if data is not None:
        data_format = _data_format(module, name, Path(data))
        with_data = f"preset {preset!r} with --data"
        layers += [
            (
                "data default",
                {
                    n: f.metadata[DATA_DEFAULT_KEY]
                    for n, f in fields.items()
                    if DATA_DEFAULT_KEY in f.metadata
                },
            ),
            (f"{name}.DATA_CONFIG", getattr(module, "DATA_CONFIG", {})),
            (with_data, chosen.data_config),
            (with_data, chosen.format_config.get(data_format, {}) if data_format else {}),
        ]
    changes: dict[str, Any] = {}
    source: dict[str, str] = {}
    for where, values in layers:
        checked = _checked_values(values, types_by_name, f"{name}: {where}")
        changes.update(checked)
        source.update(dict.fromkeys(checked, where))
    if getattr(module, "DATA", None) is None:
        _refuse_data_settings(name, assignments)
    caller: dict[str, Any] = dict(
        _checked_values(overrides or {}, types_by_name, f"{name}: overrides")
    )
    source.update(dict.fromkeys(caller, "override"))
    parsed = _parse_assignments(assignments, types_by_name)
    caller.update(parsed)
    source.update(dict.fromkeys(parsed, "--set"))
    for field, text in (options or {}).items():
        if field in types_by_name:
            flag = (option_flags or {}).get(field, f"--set {field}")
            try:
                caller[field] = parse_value(text, types_by_name[field])
            except ValueError:
                raise ConfigError(
                    f"{flag} {text}: expected {describe_type(types_by_name[field])}"
                ) from None
            source[field] = flag
    if data is None:
        for key in caller:
            if is_data_only(fields[key]):
                # a flag names itself (--text-column); --set and Python callers name the field
                named = source[key] if source[key].startswith("--") else f"{source[key]} {key}"
                named = f"--set {key}" if source[key] == "--set" else named
                raise ConfigError(
                    f"{named}: applies to --data only; add --data PATH or leave it out"
                )
    changes.update(caller)
    config = config_cls(**changes)
    check_config(config, source)
    validate = getattr(module, "validate", None)
    if validate is not None:
        try:
            validate(config)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return config


def _data_format(module: ModuleType, name: str, data: Path) -> str | None:
    """The format of ``data`` among the module's ``DATA_FORMATS`` (None when it declares
    none); ``ConfigError`` naming the path and the accepted formats when it holds none."""
    if getattr(module, "DATA", None) is None:
        raise ConfigError(f"--data: {name} reads no data set")
    formats = tuple(getattr(module, "DATA_FORMATS", ()))
    if not formats:
        return None
    refused = data_formats.refusal(data, formats, name)
    if refused:
        raise ConfigError(refused)
    return data_formats.find_format(data, formats)


def _refuse_data_settings(name: str, assignments: Iterable[str]) -> None:
    """An experiment that reads no data set refuses ``--set`` of the ``DataSubset`` fields by
    name (rather than as an unknown key)."""
    data_fields = {f.name for f in dataclasses.fields(DataSubset)}
    for assignment in assignments:
        key = assignment.partition("=")[0].strip().replace("-", "_")
        if key in data_fields:
            raise ConfigError(f"--set {key}: a --data setting, and {name} reads no data set")
