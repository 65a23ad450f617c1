from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Literal

import pytest

from mltricks.lab import registry
from mltricks.lab.config import (
    Bounds,
    ConfigError,
    apply_overrides,
    bounds_of,
    check_config,
    field_types,
    resolve_config,
    within,
)
from mltricks.lab.experiment import Preset


@dataclass
class Config:
    epochs: int = 1
    lr: float = 0.1
    name: str = "x"
    flag: bool = False
    lrs: tuple[float, ...] = (0.1,)
    sizes: list[int] | None = None
    mode: Literal["hard", "random"] = "hard"
    limit: int | None = None


def test_typed_overrides():
    cfg = apply_overrides(
        Config(),
        [
            "epochs=3",
            "lr=1e-3",
            "name=a=b",
            "flag=yes",
            "lrs=0.1,0.2",
            "sizes=1,2",
            "mode=random",
            "limit=none",
        ],
    )
    assert cfg == Config(3, 1e-3, "a=b", True, (0.1, 0.2), [1, 2], "random", None)
    assert apply_overrides(Config(), ["limit=5"]).limit == 5


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("epochs=abc", "expected int"),
        ("flag=maybe", "expected bool"),
        ("mode=soft", "'hard' | 'random'"),
        ("lrs=a,b", "comma-separated floats"),
        ("nope=1", "unknown key"),
        ("epochs", "key=value"),
    ],
)
def test_bad_overrides(assignment, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [assignment])


# --- resolve_config: preset, typed overrides, --set and flags, then ranges -----------------


@dataclass
class Ranged:
    epochs: int = 2
    rate: float = 0.5
    val_fraction: float = 0.2
    fractions: tuple[float, ...] = (0.1, 0.2)
    lr: float = 1e-3
    offset: float = field(default=-1.0, metadata=within(-2.0, 2.0))
    anything: float = field(default=-1e9, metadata=within())
    path: str | None = None
    mode: Literal["a", "b"] = "a"


def _module(**presets):
    return SimpleNamespace(
        __name__="mltricks.lab.experiments.ranged",
        Config=Ranged,
        PRESETS={
            "smoke": Preset(seeds=(0,), config={"epochs": 1}),
            "quick": Preset(seeds=(0, 1)),
            "full": Preset(seeds=(0, 1, 2), config={"epochs": 5, "fractions": (0.5,)}),
            **presets,
        },
    )


def test_resolve_applies_preset_then_overrides_then_set_then_flags():
    module = _module()
    assert resolve_config(module, "full") == Ranged(epochs=5, fractions=(0.5,))
    cfg = resolve_config(
        module,
        "full",
        overrides={"rate": 0.25},
        assignments=["epochs=7", "lr=0.01"],
        options={"path": "model.pt", "not_a_field": "ignored"},
    )
    assert cfg == Ranged(epochs=7, rate=0.25, fractions=(0.5,), lr=0.01, path="model.pt")
    # values stay typed: the flag's text became the field's type once
    assert isinstance(resolve_config(module, "quick", options={"rate": "0.75"}).rate, float)


def test_a_typo_or_a_wrong_type_in_a_preset_fails_when_resolved():
    with pytest.raises(ConfigError, match="preset 'full' sets unknown key 'epoch'"):
        resolve_config(_module(full=Preset(config={"epoch": 3})), "full")
    with pytest.raises(ConfigError, match="preset 'full' sets epochs='3': expected int"):
        resolve_config(_module(full=Preset(config={"epochs": "3"})), "full")
    with pytest.raises(ConfigError, match=r"preset 'full' val_fraction=1\.5"):
        resolve_config(_module(full=Preset(config={"val_fraction": 1.5})), "full")
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        resolve_config(_module(), "fast")


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("val_fraction=2", r"val_fraction=2.0: expected a number in \[0, 1\] \(a fraction\)"),
        ("fractions=0.1,1.5", r"fractions=0.1,1.5: expected a number in \[0, 1\].*got 1.5"),
        ("epochs=-5", r"epochs=-5: expected a number >= 0"),
        ("lr=-0.1", r"lr=-0.1: expected a number >= 0 \(a learning rate\)"),
        ("rate=nan", "rate=nan: expected a finite number"),
        ("rate=inf", "rate=inf: expected a finite number"),
        ("rate=-inf", "rate=-inf: expected a finite number"),
        ("offset=3", r"offset=3.0: expected a number in \[-2, 2\]"),
        ("anything=inf", "anything=inf: expected a finite number"),
    ],
)
def test_out_of_range_and_non_finite_values_are_refused(assignment, match):
    with pytest.raises(ConfigError, match=f"--set {match}"):
        resolve_config(_module(), "quick", assignments=[assignment])
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Ranged(), [assignment])


def test_values_inside_the_ranges_pass():
    cfg = resolve_config(
        _module(),
        "quick",
        assignments=["val_fraction=0", "rate=-3.5", "offset=-2", "anything=-1e300", "epochs=0"],
    )
    assert (cfg.val_fraction, cfg.rate, cfg.offset, cfg.epochs) == (0.0, -3.5, -2.0, 0)
    assert check_config(Ranged(val_fraction=1.0)) is None


def test_bounds_come_from_metadata_or_the_name_family():
    hints = field_types(Ranged)
    found = {f.name: bounds_of(f, hints[f.name]) for f in fields(Ranged)}
    assert found["val_fraction"] == found["fractions"] == Bounds(0.0, 1.0, "a fraction")
    assert found["epochs"].low == 0 and found["epochs"].high is None
    assert found["rate"] == Bounds() and found["offset"] == Bounds(-2.0, 2.0)
    assert found["path"] is None and found["mode"] is None


@pytest.mark.parametrize("preset", registry.PRESET_NAMES)
@pytest.mark.parametrize("name", registry.names())
def test_every_experiment_resolves_every_preset(name, preset):
    module = registry.load(name)
    config = resolve_config(module, preset)
    assert isinstance(config, module.Config)
    for key, value in module.PRESETS[preset].config.items():
        assert getattr(config, key) == value
