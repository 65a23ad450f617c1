"""lr_range_test vs torch-lr-finder on the same model, data and number of optimizer steps.

torch-lr-finder runs one exponential sweep from the smallest to the largest candidate and
suggests the learning rate of the steepest gradient of its smoothed loss; mltricks trains every
candidate of the grid from the same checkpoint and picks the steepest fitted slope. Both are
given ``len(lrs) * num_batches`` optimizer steps; torch-lr-finder stops early once its smoothed
loss exceeds 5x its best (its default), so it is timed twice: as it runs by default, and with
that stop switched off so that both take exactly the same steps. Times are medians of
interleaved repeats in one process. Over 10 seeds, each suggestion (torch-lr-finder's
snapped to the nearest grid point in log space) is compared with the truly best candidate from
the ``lr-range-test`` experiment (best validation loss after training with each candidate).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch_lr_finder import LRFinder

from mltricks.lab import engine, recipes, registry, runs
from mltricks.tuning import OPTIMIZERS, lr_range_test

# the experiment's Config and presets (its public contract); the problem comes from recipes
experiment = registry.load("lr-range-test")

SEEDS = range(10)
REPEATS = 5
TLF = "torch-lr-finder (steepest gradient)"


def ours(
    cfg: Any, problem: recipes.LRRangeProblem, seed: int, steps_taken: list | None = None
) -> int | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lr_range_test(
            problem.model,
            F.cross_entropy,
            recipes.batch_stream(problem),
            lrs=cfg.lrs,
            num_batches=cfg.num_batches,
            optimizer=cfg.optimizer,
            num_bootstrap=cfg.num_bootstrap,
            random_state=seed,
        )
    if steps_taken is not None:  # a diverged candidate stops at its first non-finite loss
        steps_taken.append(int(np.isfinite(result.losses).sum() + result.diverged.sum()))
    return result.best_index


def theirs(
    cfg: Any,
    problem: recipes.LRRangeProblem,
    diverge_th: float = 5.0,
    steps_taken: list | None = None,
) -> int | None:
    model = problem.model
    optimizer = OPTIMIZERS[cfg.optimizer](list(model.parameters()), min(cfg.lrs))
    finder = LRFinder(model, optimizer, F.cross_entropy, device="cpu")
    steps = len(cfg.lrs) * cfg.num_batches
    finder.range_test(
        problem.train,
        start_lr=min(cfg.lrs),
        end_lr=max(cfg.lrs),
        num_iter=steps,
        step_mode="exp",
        diverge_th=diverge_th,
    )
    if steps_taken is not None:
        steps_taken.append(len(finder.history["loss"]))
    figure, ax = plt.subplots()
    try:
        _, suggestion = finder.plot(ax=ax, suggest_lr=True)
    except Exception:  # too few points or no finite loss: no suggestion
        suggestion = None
    plt.close(figure)
    finder.reset()
    if suggestion is None:
        return None
    return int(np.argmin(np.abs(np.log(np.asarray(cfg.lrs)) - np.log(suggestion))))


def _problem(cfg: Any, seed: int, device: torch.device) -> recipes.LRRangeProblem:
    return recipes.lr_range_problem(
        width=cfg.width,
        batch_size=cfg.batch_size,
        val_fraction=cfg.val_fraction,
        seed=seed,
        device=device,
    )


def _truth(cfg: Any, problem: recipes.LRRangeProblem, seed: int) -> list[float]:
    return recipes.trained_val_losses(
        problem,
        lrs=cfg.lrs,
        optimizer=cfg.optimizer,
        epochs=cfg.truth_epochs,
        repeats=cfg.truth_repeats,
        batch_size=cfg.batch_size,
        seed=seed,
    )


def _median_times(functions: dict[str, Any], repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of each function; every repeat runs all of them once, in turn."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def truths_from_full_run(cfg: Any) -> dict[int, int]:
    """The truly best candidate per seed from the latest finished full ``lr-range-test`` run
    under ``$MLTRICKS_RUNS`` (default ``runs/``) with this exact configuration, if there is one.

    Finding the truth costs 3 trainings of every candidate for every seed (the bulk of the
    experiment's time); the benchmark reuses it rather than repeating it.
    """
    root = Path(os.environ.get("MLTRICKS_RUNS", "runs")) / "lr-range-test"
    for folder in sorted(root.glob("*"), reverse=True):
        if runs.read_json(folder / "status.json", {}).get("state") != "done":
            continue
        config = runs.read_json(folder / "config.json", {})
        if config.get("preset") != "full" or config.get("config") != json.loads(
            json.dumps(dataclasses.asdict(cfg))
        ):
            continue
        per_seed = runs.read_json(folder / "metrics.json", {}).get("per_seed", {})
        return {int(seed): int(m["true_best"]) for seed, m in per_seed.items()}
    return {}


def main() -> str:
    engine.set_progress(False)
    cfg = dataclasses.replace(experiment.Config(), **experiment.PRESETS["full"].config)
    device = torch.device("cpu")
    rows: dict[str, list[tuple[bool, bool]]] = {"mltricks lr_range_test (slope)": [], TLF: []}
    known = truths_from_full_run(cfg)
    for seed in SEEDS:
        problem = _problem(cfg, seed, device)
        if seed in known:
            truth = known[seed]
        else:
            truth = int(np.argmin(_truth(cfg, problem, seed)))
        for name, pick in (
            ("mltricks lr_range_test (slope)", ours(cfg, problem, seed)),
            (TLF, theirs(cfg, problem)),
        ):
            rows[name].append((pick is not None and abs(pick - truth) <= 1, pick == truth))

    problem = _problem(cfg, 0, device)
    steps = len(cfg.lrs) * cfg.num_batches
    stopped_at: list[int] = []
    ours_steps: list[int] = []
    seconds = _median_times(
        {
            "ours": lambda: ours(cfg, problem, 0, steps_taken=ours_steps),
            "same steps": lambda: theirs(cfg, problem, diverge_th=float("inf")),
            "default": lambda: theirs(cfg, problem, steps_taken=stopped_at),
        }
    )
    lines = [
        f"Digits, SmallCNN(width={cfg.width}), {cfg.optimizer}, batch {cfg.batch_size}, "
        f"grid {len(cfg.lrs)} candidates {min(cfg.lrs):.0e}..{max(cfg.lrs):.0e}, "
        f"{steps} optimizer steps each; truth = best validation loss after "
        f"{cfg.truth_epochs} epochs with each candidate; {len(SEEDS)} seeds; CPU, medians of "
        f"{REPEATS} interleaved repeats.",
        "",
        "| method | optimizer steps | median time (s) | time ratio, same steps | time ratio per "
        "step | within one grid step of truth | exact |",
        "|---|---|---|---|---|---|---|",
    ]
    assert ours_steps[0] <= steps
    per_step = seconds["default"] / stopped_at[0]  # torch-lr-finder's seconds per step
    for name, key, taken, picks in (
        ("mltricks lr_range_test (slope)", "ours", ours_steps[0], "mltricks lr_range_test (slope)"),
        ("torch-lr-finder, divergence stop off", "same steps", steps, None),
        ("torch-lr-finder, default", "default", stopped_at[0], TLF),
    ):
        quality = "| timing only | |"
        if picks is not None:
            hits = np.array(rows[picks], dtype=float)
            quality = f"| {hits[:, 0].mean():.0%} | {hits[:, 1].mean():.0%} |"
        lines.append(
            f"| {name} | {taken} | {seconds[key]:.2f} | "
            f"{seconds[key] / seconds['same steps']:.2f} | "
            f"{seconds[key] / taken / per_step:.2f} {quality}"
        )
    lines.append("")
    lines.append(f"mltricks's time includes {cfg.num_bootstrap} bootstrap resamples of the slopes.")
    source = "a full lr-range-test run" if known else "training here"
    lines.append(f"Truth for {len(known) or len(SEEDS)} seeds taken from {source}.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
