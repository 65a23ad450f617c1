"""A tiny experiment that takes ``--data`` (registered by the tests only): its run and its
summarize report the config they were given, so a test can compare them with ``config.json``."""

from dataclasses import dataclass, field

from mltricks.lab.config import DataSubset
from mltricks.lab.config_fields import data_default
from mltricks.lab.experiment import Claim, Preset, RunContext

SYSTEM = "Positional Encoding"
DESCRIPTION = "a fake experiment that reads an MNIST-format folder"
DATA = "an MNIST-format IDX folder"
DATA_FORMATS = ("mnist",)


@dataclass
class Config(DataSubset):
    epochs: int = 30
    recalibrate: bool = field(default=False, metadata=data_default(True))


DATA_CONFIG = {"max_train": 3000}
PRESETS = {
    "smoke": Preset(seeds=(0,), data_config={"max_train": 20}),
    "quick": Preset(seeds=(0,)),
    "full": Preset(seeds=(0, 1), config={"epochs": 60}, data_config={"epochs": 10}),
}
CLAIMS = (Claim("ran", lambda s: s["epochs"].mean > 0, ("epochs",)),)


def run(cfg: Config, ctx: RunContext) -> dict:
    return {
        "epochs": cfg.epochs,
        "max_train": cfg.max_train,
        "recalibrate": cfg.recalibrate,
        "subsets": cfg.subset_random_state(ctx.seed),
    }


def summarize(cfg: Config, summary, results, ctx: RunContext) -> dict:
    return {"summarized_epochs": cfg.epochs, "summarized_recalibrate": float(cfg.recalibrate)}
