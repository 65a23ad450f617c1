"""An experiment for the parallel runner's tests: seeds that succeed, fail or kill their worker.

Workers import it by name (``tests.lab.parallel_experiment``), as they import a real experiment.
"""

import os
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt

from mltricks.lab.experiment import Claim, Preset, RunContext

SYSTEM = "Positional Encoding"
DESCRIPTION = "seeds that succeed, raise or end their process, for the runner's tests"
DATA = None


@dataclass
class Config:
    raise_seed: int = -1  # this seed raises (-1: none)
    exit_seed: int = -1  # this seed ends its process, as a killed worker would
    sleep: float = 0.0


PRESETS = {"smoke": Preset(seeds=(0, 1)), "quick": Preset(seeds=(0, 1)), "full": Preset((0, 1))}
CLAIMS = (Claim("score is positive", lambda s: s["score"].mean > 0, ("score",), ("smoke",)),)


def run(cfg: Config, ctx: RunContext) -> dict:
    ctx.log(f"seed {ctx.seed} in process {os.getpid()}")
    time.sleep(cfg.sleep)
    if ctx.seed == cfg.raise_seed:
        raise ValueError(f"seed {ctx.seed} fails on purpose")
    if ctx.seed == cfg.exit_seed:
        os._exit(3)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, ctx.seed])
    ctx.savefig(fig, f"line-{ctx.seed}", f"seed {ctx.seed}")
    return {"score": 1.0 + ctx.seed, "pid": os.getpid()}
