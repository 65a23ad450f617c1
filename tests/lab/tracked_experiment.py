"""A tiny experiment that trains with ``engine.fit``, for the tracking tests (registered by them
only): two ``fit`` calls per seed (``desc`` "train" and "tune"), a per-seed figure, a
cross-seed figure and metric in ``summarize``, and a switch that makes a seed fail."""

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from torch import nn

from mltricks.lab import engine
from mltricks.lab.experiment import Claim, Preset, RunContext, Summary

SYSTEM = "Positional Encoding"
DESCRIPTION = "a fake experiment that trains, for the tracking tests"
DATA = None


@dataclass
class Config:
    epochs: int = 3
    lr: float = 0.5
    widths: tuple[int, ...] = (4, 2)
    fail_second_seed: bool = False


PRESETS = {
    "smoke": Preset(seeds=(0, 1)),
    "quick": Preset(seeds=(0, 1)),
    "full": Preset(seeds=(0, 1, 2)),
}

CLAIMS = (
    Claim("accuracy is a share", lambda s: 0 <= s["accuracy"].mean <= 1, ("accuracy",), ("smoke",)),
)


def run(cfg: Config, ctx: RunContext) -> dict:
    if cfg.fail_second_seed and ctx.seed == ctx.seeds[1]:
        raise RuntimeError("this seed fails on purpose")
    x = torch.randn(64, cfg.widths[0])
    y = (x[:, 0] > 0).long()
    model = nn.Linear(cfg.widths[0], cfg.widths[1])
    loader = engine.make_loader(x, y, batch_size=16)
    history = engine.fit(
        model,
        loader,
        torch.optim.SGD(model.parameters(), lr=cfg.lr),
        epochs=cfg.epochs,
        val_loader=engine.make_loader(x, y, batch_size=32),
        desc="train",
    )
    tuned = engine.fit(
        model, loader, torch.optim.SGD(model.parameters(), lr=cfg.lr / 10), epochs=2, desc="tune"
    )
    final = engine.evaluate(model, loader)
    if ctx.first_seed:
        figure, ax = plt.subplots(figsize=(3, 2))
        ax.plot(history.column("train_loss"))
        ctx.savefig(figure, "loss", "training loss per epoch")
    return {
        "accuracy": final["accuracy"],
        "loss": final["loss"],
        "learned": final["accuracy"] > 0.5,
        "train_loss": history.column("train_loss"),
        "val_accuracy": history.column("val_accuracy"),
        "tune_loss": tuned.column("train_loss"),
    }


def summarize(cfg: Config, summary: Summary, results: list[dict], ctx: RunContext) -> dict:
    figure, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(len(results)), [r["accuracy"] for r in results])
    ctx.savefig(figure, "accuracy-over-seeds", "final accuracy of each seed")
    return {"best_accuracy": max(r["accuracy"] for r in results)}
