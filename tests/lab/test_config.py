import re
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Literal

import pytest

from mltricks.lab import registry
from mltricks.lab.config import (
    ConfigError,
    DataSubset,
    apply_overrides,
    check_config,
    resolve_config,
)
from mltricks.lab.config_fields import (
    Bounds,
    bounds_of,
    data_default,
    data_only,
    existing_path,
    field_types,
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
    count: int = 3
    rate_share: float = 0.5


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
        ("val_fraction=2", r"val_fraction=2.0: expected a number in \(0, 1\) \(a held-out"),
        ("val_fraction=0", r"val_fraction=0.0: expected a number in \(0, 1\)"),
        ("fractions=0.1,1.5", r"fractions=0.1,1.5: expected a number in \(0, 1\].*got 1.5"),
        ("fractions=0,0.5", r"fractions=0.0,0.5: expected a number in \(0, 1\].*got 0.0"),
        ("epochs=-5", r"epochs=-5: expected a number >= 1"),
        ("epochs=0", r"epochs=0: expected a number >= 1 \(a budget or size\)"),
        ("count=-1", r"count=-1: expected a number >= 0"),
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
        assignments=[
            "val_fraction=0.999", "rate=-3.5", "offset=-2", "anything=-1e300", "epochs=1",
            "count=0", "fractions=1",
        ],
    )  # fmt: skip
    assert (cfg.val_fraction, cfg.rate, cfg.offset, cfg.epochs) == (0.999, -3.5, -2.0, 1)
    assert (cfg.count, cfg.fractions) == (0, (1.0,))
    assert check_config(Ranged(val_fraction=0.5)) is None


def test_bounds_come_from_metadata_or_the_name_family():
    hints = field_types(Ranged)
    found = {f.name: bounds_of(f, hints[f.name]) for f in fields(Ranged)}
    assert found["val_fraction"] == Bounds(
        0, 1, "a held-out share: both parts non-empty", True, True
    )
    assert found["fractions"] == Bounds(0.0, 1.0, "a labeled share", low_open=True)
    assert found["rate_share"] == Bounds(0.0, 1.0, "a fraction")
    assert found["epochs"] == Bounds(1, None, "a budget or size")
    assert found["count"] == Bounds(0, None, "a count, size, seed or index")
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


def test_an_empty_range_is_refused_when_declared():
    # issue 23 item 12: within(1, 0) was accepted, and no value could ever pass
    for low, high, kwargs in ((1, 0, {}), (1, 1, {"low_open": True}), (0, 0, {"high_open": True})):
        with pytest.raises(ValueError, match="the range is empty"):
            within(low, high, **kwargs)
    assert within(1, 1)["bounds"].contains(1)


# --- one resolution with --data: layers, --set wins, data-only fields, formats ----------------


@dataclass
class WithData(DataSubset):
    epochs: int = 30
    width: int = 16
    recalibrate: bool = field(default=False, metadata=data_default(True))
    column: str = field(default="text", metadata=data_only())
    model: str | None = field(default=None, metadata=existing_path("a model file"))


def _data_module(**attributes):
    module = SimpleNamespace(
        __name__="mltricks.lab.experiments.with_data",
        Config=WithData,
        DATA="an MNIST-format IDX folder or the CIFAR-10 batches",
        DATA_FORMATS=("mnist", "cifar10"),
        DATA_CONFIG={"max_train": 3000, "width": 24},
        PRESETS={
            "smoke": Preset(config={"epochs": 1}, data_config={"max_train": 200}),
            "quick": Preset(),
            "full": Preset(
                config={"epochs": 60},
                data_config={"epochs": 10},
                format_config={"cifar10": {"epochs": 5, "width": 32}},
            ),
        },
    )
    vars(module).update(attributes)
    return module


@pytest.fixture
def folders(tmp_path):
    """One folder per data format, holding only the names its format is recognised by."""
    made = {}
    for name, files in (
        ("mnist", ["train-images-idx3-ubyte.gz"]),
        ("cifar10", ["cifar-10-batches-py/data_batch_1"]),
        ("image_folder", ["cat/1.png"]),
        ("voc", ["a.xml"]),
        ("coco", ["boxes.json"]),
        ("empty", []),
    ):
        folder = tmp_path / name
        folder.mkdir()
        for file in files:
            (folder / file).parent.mkdir(parents=True, exist_ok=True)
            (folder / file).write_bytes(b"")
        made[name] = folder
    made["csv"] = tmp_path / "texts.csv"
    made["csv"].write_text("content\nhello\n")
    made["archive"] = tmp_path / "mnist.tar.gz"
    made["archive"].write_bytes(b"")
    return made


def test_data_layers_apply_with_data_only_and_in_order(folders):
    module = _data_module()
    # the digits: defaults and the preset, no data layer
    assert resolve_config(module, "full") == WithData(epochs=60)
    # data default < DATA_CONFIG < preset data_config < format_config
    assert resolve_config(module, "full", data=folders["mnist"]) == WithData(
        epochs=10, width=24, max_train=3000, recalibrate=True
    )
    assert resolve_config(module, "full", data=folders["cifar10"]) == WithData(
        epochs=5, width=32, max_train=3000, recalibrate=True
    )
    assert resolve_config(module, "smoke", data=folders["mnist"]).max_train == 200


def test_set_wins_over_every_data_layer(folders):
    # issue 24: --set recalibrate_bn=false --data ... was silently turned back on
    module = _data_module()
    cfg = resolve_config(
        module,
        "full",
        data=folders["cifar10"],
        assignments=["recalibrate=false", "epochs=7", "width=8", "max_train=0"],
    )
    assert (cfg.recalibrate, cfg.epochs, cfg.width, cfg.max_train) == (False, 7, 8, 0)
    assert (
        resolve_config(module, "full", data=folders["mnist"], overrides={"epochs": 2}).epochs == 2
    )


@pytest.mark.parametrize("assignment", ["max_train=10", "subset_seed=1", "column=title"])
def test_a_data_only_field_without_data_is_refused_naming_it(assignment):
    key = assignment.partition("=")[0]
    with pytest.raises(ConfigError, match=f"^--set {key}: applies to --data only"):
        resolve_config(_data_module(), "quick", assignments=[assignment])
    with pytest.raises(ConfigError, match=f"^override {key}: applies to --data only"):
        resolve_config(_data_module(), "quick", overrides={key: WithData().__dict__[key] or 1})


def test_a_data_setting_on_an_experiment_without_data_is_refused_naming_it(folders):
    module = _module()  # DATA-less, like positional-encoding
    with pytest.raises(
        ConfigError, match=r"^--set max_train: a --data setting, and ranged reads no"
    ):
        resolve_config(module, "quick", assignments=["max_train=10"])
    module.DATA = None
    with pytest.raises(ConfigError, match=r"^--data: ranged reads no data set"):
        resolve_config(module, "quick", data=folders["mnist"])


@pytest.mark.parametrize(
    ("folder", "words"),
    [
        ("empty", "is a folder that holds no data set in a format the lab reads"),
        ("voc", r"holds a Pascal VOC folder"),
        ("csv", "holds a CSV file"),
        ("archive", "is not a data set in a format the lab reads"),
    ],
)
def test_data_in_a_format_the_experiment_does_not_read_is_refused(folders, folder, words):
    path = folders[folder]
    with pytest.raises(ConfigError) as caught:
        resolve_config(_data_module(), "quick", data=path)
    message = str(caught.value)
    assert message.startswith(f"--data '{path}' ") and "\n" not in message
    assert re.search(words, message), message
    assert "with-data reads an MNIST-format IDX folder" in message and "CIFAR-10" in message


def test_a_missing_path_field_is_refused_naming_the_flag(tmp_path):
    module = _data_module()
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=f"^--model {missing}: no such file; expected a model"):
        resolve_config(
            module, "quick", options={"model": str(missing)}, option_flags={"model": "--model"}
        )
    missing.write_bytes(b"")
    assert resolve_config(module, "quick", options={"model": str(missing)}).model == str(missing)


def test_the_modules_validate_rules_are_config_errors():
    def validate(cfg):
        if cfg.epochs > 50:
            raise ValueError(f"--set epochs={cfg.epochs}: at most 50 here")

    module = _data_module(validate=validate)
    assert resolve_config(module, "quick").epochs == 30
    with pytest.raises(ConfigError, match=r"^--set epochs=60: at most 50 here$"):
        resolve_config(module, "full")


# --- every experiment, every preset, every data format it reads --------------------------------


def _other(value):
    """A different valid value of a data layer's setting, as --set text."""
    if isinstance(value, bool):
        return str(not value).lower()
    if value is None:
        return "1"
    if isinstance(value, int):
        return str(value + 1)
    return str(value / 2)


def _data_layers(module, preset, data_format):
    chosen = module.PRESETS[preset]
    layers = {
        f.name: f.metadata["data_default"]
        for f in fields(module.Config)
        if "data_default" in f.metadata
    }
    layers |= getattr(module, "DATA_CONFIG", {})
    layers |= chosen.data_config
    return layers | chosen.format_config.get(data_format, {})


EVERY_KIND = [
    (name, preset, data_format)
    for name in registry.names()
    for preset in registry.PRESET_NAMES
    for data_format in (None, *getattr(registry.load(name), "DATA_FORMATS", ()))
]


@pytest.mark.parametrize(("name", "preset", "data_format"), EVERY_KIND)
def test_every_experiment_resolves_every_preset_on_every_data_format(
    name, preset, data_format, folders
):
    module = registry.load(name)
    data = folders[data_format] if data_format else None
    config = resolve_config(module, preset, data=data)
    digits = resolve_config(module, preset)
    layers = _data_layers(module, preset, data_format) if data else {}
    for f in fields(config):
        expected = layers.get(f.name, getattr(digits, f.name))
        assert getattr(config, f.name) == expected, f.name
    if not data:  # the preset's own values, and nothing data-only set by it
        assert all(getattr(config, k) == v for k, v in module.PRESETS[preset].config.items())
        data_only_fields = {f.name for f in fields(config) if f.metadata.get("data_only")}
        assert not data_only_fields & set(module.PRESETS[preset].config), name
        return
    # --set wins over every data layer
    assignments = [f"{key}={_other(value)}" for key, value in layers.items()]
    overridden = resolve_config(module, preset, data=data, assignments=assignments)
    for key, value in layers.items():
        assert getattr(overridden, key) != value, key
