"""Tiny experiment modules for testing the lab itself (registered by the tests only)."""

import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mltricks.lab.experiment import Claim, Preset, RunContext

SYSTEM = "Positional Encoding"
DESCRIPTION = "a fake experiment for the lab's tests <b>"
DATA = "anything"


@dataclass
class Config:
    epochs: int = 2
    rate: float = 0.5
    label: str = "<script>alert(1)</script>"
    fail: bool = False
    sleep: float = 0.0


PRESETS = {
    "smoke": Preset(seeds=(0,)),
    "quick": Preset(seeds=(0, 1)),
    "full": Preset(seeds=(0, 1, 2), config={"epochs": 3}),
}

CLAIMS = (
    Claim(
        "score is above 0.4", lambda s: s["score"].mean > 0.4, ("score",), presets=("quick", "full")
    ),
    Claim("score is above 10", lambda s: s["score"].mean > 10, ("score",), presets=("full",)),
)


def run(cfg: Config, ctx: RunContext) -> dict:
    if cfg.fail:
        raise RuntimeError("this experiment fails on purpose")
    ctx.log(f"seed {ctx.seed} label {cfg.label}")
    time.sleep(cfg.sleep)
    if ctx.first_seed:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, cfg.rate])
        ctx.savefig(fig, "line", f"a line {cfg.label}")
    return {"score": cfg.rate + 0.01 * ctx.seed, "epochs": cfg.epochs, "series": [1, 2, 3]}
