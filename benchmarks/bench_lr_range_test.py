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

A second table widens the grid past the stable range (``WIDE_EXTRA``, up to 3.0), where a
candidate's loss explodes and partly recovers: there the steepest slope belongs to a diverging
rate unless the divergence rule (``divergence_threshold``) removes it. It compares the slope
pick with the rule, without it (``divergence_threshold=None``, the behaviour before issue 23),
the naive first/last pick and torch-lr-finder's suggestion against the truth on the wide grid.
The wide grid extends the experiment's grid, and each candidate's truth does not depend on the
others, so one truth per seed serves both tables.
"""

from __future__ import annotations

import dataclasses
import json
import math
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

from mltricks.lab import engine, lr_problem, registry, run_folder
from mltricks.tuning import OPTIMIZERS, lr_range_test

# the experiment's Config and presets (its public contract); the problem comes from lr_problem
experiment = registry.load("lr-range-test")

SEEDS = range(10)
REPEATS = 5
TLF = "torch-lr-finder (steepest gradient)"
WIDE_EXTRA = (1.0, 3.0)  # appended to the experiment's grid, which ends at 0.3


def ours(
    cfg: Any, problem: lr_problem.LRRangeProblem, seed: int, steps_taken: list | None = None
) -> int | None:
    return ours_result(cfg, problem, seed, steps_taken=steps_taken).best_index


def ours_result(
    cfg: Any,
    problem: lr_problem.LRRangeProblem,
    seed: int,
    *,
    steps_taken: list | None = None,
    **options: Any,
) -> Any:
    """mltricks's range test on the problem; ``options`` go to ``lr_range_test``."""
    calls = [0]

    def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls[0] += 1  # a diverged candidate stops early: count the batches it did take
        return F.cross_entropy(outputs, targets)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lr_range_test(
            problem.model,
            loss_fn,
            lr_problem.batch_stream(problem),
            lrs=cfg.lrs,
            num_batches=cfg.num_batches,
            optimizer=cfg.optimizer,
            num_bootstrap=cfg.num_bootstrap,
            random_state=seed,
            **options,
        )
    if steps_taken is not None:
        steps_taken.append(calls[0])
    return result


def theirs(
    cfg: Any,
    problem: lr_problem.LRRangeProblem,
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


def _problem(cfg: Any, seed: int, device: torch.device) -> lr_problem.LRRangeProblem:
    return lr_problem.lr_range_problem(
        width=cfg.width,
        batch_size=cfg.batch_size,
        val_fraction=cfg.val_fraction,
        random_state=seed,
        device=device,
    )


def _truth(cfg: Any, problem: lr_problem.LRRangeProblem, seed: int) -> list[float]:
    return lr_problem.trained_val_losses(
        problem,
        lrs=cfg.lrs,
        optimizer=cfg.optimizer,
        epochs=cfg.truth_epochs,
        repeats=cfg.truth_repeats,
        batch_size=cfg.batch_size,
        random_state=seed,
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
        if run_folder.read_json(folder / "status.json", {}).get("state") != "done":
            continue
        config = run_folder.read_json(folder / "config.json", {})
        if config.get("preset") != "full" or config.get("config") != json.loads(
            json.dumps(dataclasses.asdict(cfg))
        ):
            continue
        per_seed = run_folder.read_json(folder / "metrics.json", {}).get("per_seed", {})
        return {int(seed): int(m["true_best"]) for seed, m in per_seed.items()}
    return {}


def wide_grid_table(
    cfg: Any, problems: dict[int, lr_problem.LRRangeProblem], truths: dict[int, list[float]]
) -> str:
    """Picks on the wide grid against its truth: within one step, exact, the pick's trained
    validation loss, and how often the pick was a candidate that diverged in the range test."""
    names = (
        "mltricks lr_range_test (slope, divergence rule)",
        "mltricks slope, divergence_threshold=None (before issue 23)",
        "naive first/last pick",
        TLF,
    )
    picks: dict[str, list[int | None]] = {name: [] for name in names}
    exploded: dict[str, list[bool]] = {name: [] for name in names}
    called_stable = []
    for seed, problem in problems.items():
        ruled = ours_result(cfg, problem, seed)
        blind = ours_result(cfg, problem, seed, divergence_threshold=None)
        # what "diverged" means for every method: the loss crossed 4x its start or went
        # non-finite in the range test (the rule's own judgement, read off the ruled run)
        diverged = ruled.diverged
        for name, pick in zip(
            names, (ruled.best_index, blind.best_index, blind.naive_index, theirs(cfg, problem))
        ):
            picks[name].append(pick)
            exploded[name].append(pick is not None and bool(diverged[pick]))
        called_stable.append(ruled.stable)
    lines = [
        f"Wide grid: {len(cfg.lrs)} candidates {min(cfg.lrs):.0e}..{max(cfg.lrs):.0e} "
        f"(the experiment's grid and {', '.join(f'{lr:g}' for lr in WIDE_EXTRA)}), otherwise "
        f"as above; {len(problems)} seeds. The pick's val loss is the truth's score of the "
        "picked candidate (mean best validation loss over its trainings; inf if they diverged), "
        "as a median over seeds.",
        "",
        "| method | within one grid step of truth | exact | median val loss at the pick | "
        "picks a candidate that diverged |",
        "|---|---|---|---|---|",
    ]
    best_loss = float(np.median([min(truth) for truth in truths.values()]))
    for name in names:
        within, exact, val = [], [], []
        for pick, truth in zip(picks[name], truths.values()):
            best = int(np.argmin(truth))
            within.append(pick is not None and abs(pick - best) <= 1)
            exact.append(pick == best)
            val.append(math.inf if pick is None else truth[pick])
        lines.append(
            f"| {name} | {np.mean(within):.0%} | {np.mean(exact):.0%} | "
            f"{np.median(val):.3f} | {sum(exploded[name])}/{len(problems)} |"
        )
    lines += [
        "",
        f"Median best val loss (the truth's own score): {best_loss:.3f}. The rule's pick was "
        f"called stable in {sum(called_stable)}/{len(problems)} seeds (never when it borders a "
        "diverged candidate). Each method's picks by seed (truth first): "
        + "; ".join(
            f"seed {seed}: {int(np.argmin(truth))} | "
            + " ".join(str(picks[name][k]) for name in names)
            for k, (seed, truth) in enumerate(truths.items())
        )
        + ".",
    ]
    return "\n".join(lines)


def main() -> str:
    engine.set_progress(False)
    cfg = dataclasses.replace(experiment.Config(), **experiment.PRESETS["full"].config)
    wide = dataclasses.replace(cfg, lrs=tuple(cfg.lrs) + WIDE_EXTRA)
    device = torch.device("cpu")
    rows: dict[str, list[tuple[bool, bool]]] = {"mltricks lr_range_test (slope)": [], TLF: []}
    known = truths_from_full_run(cfg)
    problems, wide_truths = {}, {}
    for seed in SEEDS:
        problem = _problem(cfg, seed, device)
        problems[seed] = problem
        # each candidate's truth is trained on its own, so the wide grid's scores begin with
        # the experiment grid's
        wide_truths[seed] = _truth(wide, problem, seed)
        if seed in known:
            truth = known[seed]
        else:
            truth = int(np.argmin(wide_truths[seed][: len(cfg.lrs)]))
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
    lines += ["", wide_grid_table(wide, problems, wide_truths)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
