"""Learning-rate range test: does the slope pick find the learning rate that trains best?

For each seed: a small CNN on the digits, one range test from its initial weights (every
candidate from the same checkpoint, same batches, least-squares slope), the naive pick (largest
drop from the first to the last batch loss), and the truth: the same initial weights trained with
every candidate for a few epochs through ``engine.fit``, scored by validation loss. The problem
and the truth come from ``lr_problem.lr_range_problem`` and ``lr_problem.trained_val_losses``, which
``benchmarks/bench_lr_range_test.py`` shares.

The strong simple baseline is the learning rate a practitioner uses without a range test:
Adam's default, 1e-3 (``default_lr``), scored by the same truth (its trained validation loss),
beside the naive pick's; the range test is worth running only if its pick trains better than
that default.

What the original project did and what was wrong in it: docs/systems/lr-range-test.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch.nn.functional as F

from mltricks.lab.experiment import Claim, Preset, RunContext, Summary
from mltricks.lab.lr_problem import (
    LRRangeProblem,
    batch_stream,
    lr_range_problem,
    trained_val_losses,
)
from mltricks.tuning import lr_range_test

SYSTEM = "Learning Rate Range Test"
DESCRIPTION = "slope-based learning-rate pick vs the naive first/last rule vs the trained truth"
DATA = None


@dataclass
class Config:
    lrs: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    optimizer: Literal["sgd", "momentum", "adam", "adamw"] = "adam"  # tuning.OPTIMIZERS
    num_batches: int = 100
    batch_size: int = 32
    width: int = 16
    truth_epochs: int = 3
    truth_repeats: int = 3
    val_fraction: float = 0.25
    num_bootstrap: int = 200
    # the baseline: the learning rate used without a range test (Adam's default); trained for
    # the truth too when it is not one of the candidates
    default_lr: float = 1e-3


PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "lrs": (1e-3, 1e-2, 1e-1),
            "num_batches": 4,
            "truth_epochs": 1,
            "truth_repeats": 1,
            "num_bootstrap": 20,
        },
    ),
    # one truth training per candidate: a noisier truth than full's three, on 3 seeds
    "quick": Preset(seeds=(0, 1, 2), config={"truth_repeats": 1}),
    "full": Preset(seeds=tuple(range(10))),
}

CLAIMS = (
    Claim(
        "the slope pick lies within one grid step of the truly best learning rate in at least "
        "80% of seeds",
        lambda s: s["slope_within_one_step"].mean >= 0.8,
        ("slope_within_one_step",),
        min_seeds=10,
    ),
    Claim(
        "the slope pick is within one grid step of the truth more often than the naive pick",
        lambda s: s["slope_within_one_step"].mean > s["naive_within_one_step"].mean,
        ("slope_within_one_step", "naive_within_one_step"),
        min_seeds=10,
    ),
    Claim(
        "training at the slope pick reaches a validation loss no higher than training at "
        "Adam's default learning rate 1e-3 (what a practitioner uses without a range test) in "
        "at least 80% of seeds (on quick: all 3 seeds, one truth training per candidate)",
        lambda s: s["slope_no_worse_than_default"].mean >= 0.8,
        ("slope_no_worse_than_default", "val_loss_slope_pick", "val_loss_default_lr"),
        presets=("quick", "full"),
        min_seeds=3,
    ),
    Claim(
        "training at the slope pick reaches a validation loss no higher than training at the "
        "naive pick in at least 80% of seeds",
        lambda s: s["slope_no_worse_than_naive"].mean >= 0.8,
        ("slope_no_worse_than_naive", "val_loss_slope_pick", "val_loss_naive_pick"),
        min_seeds=10,
    ),
)


def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    problem = lr_range_problem(
        width=cfg.width,
        batch_size=cfg.batch_size,
        val_fraction=cfg.val_fraction,
        random_state=ctx.seed,
        device=ctx.device,
    )
    result = lr_range_test(
        problem.model,
        F.cross_entropy,
        batch_stream(problem),
        lrs=cfg.lrs,
        num_batches=cfg.num_batches,
        optimizer=cfg.optimizer,
        num_bootstrap=cfg.num_bootstrap,
        random_state=ctx.seed,
    )
    ctx.log(result.message)
    val_losses = trained_val_losses(
        problem,
        lrs=cfg.lrs,
        optimizer=cfg.optimizer,
        epochs=cfg.truth_epochs,
        repeats=cfg.truth_repeats,
        batch_size=cfg.batch_size,
        random_state=ctx.seed,
    )
    truth = int(np.argmin(val_losses))
    slope, naive = result.best_index, result.naive_index
    default_loss = _default_val_loss(cfg, problem, val_losses, ctx.seed)

    def loss_at(pick: int | None) -> float:  # no pick trains nothing: the worst outcome
        return val_losses[pick] if pick is not None else math.inf

    if ctx.first_seed:
        fig, ax = plt.subplots(figsize=(8, 5))
        result.plot(ax)
        ctx.savefig(
            fig,
            "batch-losses",
            f"seed {ctx.seed}: batch losses per candidate and fitted "
            "lines (the seed's figure); * marks the slope pick",
        )

    def within(pick: int | None) -> bool:
        return pick is not None and abs(pick - truth) <= 1

    return {
        "slope_within_one_step": within(slope),
        "naive_within_one_step": within(naive),
        "slope_exact": slope == truth,
        "naive_exact": naive == truth,
        "slope_stable": result.stable,
        "slope_pick_frequency": float(result.pick_frequency[slope]) if slope is not None else 0.0,
        "best_val_loss": float(val_losses[truth]),
        # a diverged training counts inf, which the summary leaves out of a mean: the
        # comparisons are per seed
        "val_loss_slope_pick": loss_at(slope),
        "val_loss_naive_pick": loss_at(naive),
        "val_loss_default_lr": default_loss,
        "slope_no_worse_than_default": loss_at(slope) <= default_loss,
        "slope_no_worse_than_naive": loss_at(slope) <= loss_at(naive),
        "slope_pick": slope,
        "naive_pick": naive,
        "true_best": truth,
        "val_losses": val_losses,
        "slopes": result.slopes,
        "slope_intervals": result.slope_intervals,
    }


def _default_val_loss(
    cfg: Config, problem: LRRangeProblem, val_losses: list[float], seed: int
) -> float:
    """The truth's score of ``default_lr``: read from the candidates' when it is one of them
    (the same trainings), else trained the same way."""
    for lr, loss in zip(cfg.lrs, val_losses):
        if math.isclose(lr, cfg.default_lr, rel_tol=1e-9):
            return loss
    (loss,) = trained_val_losses(
        problem,
        lrs=(cfg.default_lr,),
        optimizer=cfg.optimizer,
        epochs=cfg.truth_epochs,
        repeats=cfg.truth_repeats,
        batch_size=cfg.batch_size,
        random_state=seed,
    )
    return loss


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    grid = np.arange(len(cfg.lrs))
    labels = [f"{lr:.0e}" for lr in cfg.lrs]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    seeds = np.arange(len(results))
    truth = np.array([r["true_best"] for r in results])
    ax.fill_between(seeds, truth - 1, truth + 1, step="mid", color="#cde", label="truth +- 1 step")
    ax.plot(seeds, truth, "ks", label="truth (best val loss)")
    for key, marker, label in (
        ("slope_pick", "o", "slope pick"),
        ("naive_pick", "x", "naive pick"),
    ):
        values = [np.nan if r[key] is None else r[key] for r in results]
        offset = -0.15 if key == "slope_pick" else 0.15
        ax.plot(seeds + offset, values, marker, ms=8, ls="none", label=label)
    ax.set(
        xticks=seeds,
        xticklabels=[str(s) for s in ctx.seeds],
        xlabel="seed",
        yticks=grid,
        yticklabels=labels,
        ylabel="learning rate",
        title="picks vs truth across seeds",
    )
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "picks-vs-truth",
        "learning-rate picks of each rule against the best "
        f"candidate after {cfg.truth_epochs} epochs of training",
    )

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for seed, r in zip(ctx.seeds, results):
        losses = np.array(
            [np.nan if v is None or not math.isfinite(v) else v for v in r["val_losses"]]
        )
        ax.plot(grid, losses, "-o", ms=3, alpha=0.7, label=f"seed {seed}")
    defaults = [i for i, lr in enumerate(cfg.lrs) if math.isclose(lr, cfg.default_lr, rel_tol=1e-9)]
    for i in defaults:
        ax.axvline(i, color="gray", ls=":", label=f"default {cfg.default_lr:.0e} (the baseline)")
    ax.set(
        xticks=grid,
        xticklabels=labels,
        xlabel="learning rate",
        yscale="log",
        ylabel=f"val loss after {cfg.truth_epochs} epochs",
        title="the truth: trained val loss",
    )
    ax.legend(fontsize=7, ncol=2)
    ctx.savefig(
        fig,
        "val-loss-vs-lr",
        "validation loss after training with each candidate (missing points diverged); dotted: "
        "the default learning rate used without a range test",
    )
    return {}
