"""lr_range_test vs torch-lr-finder on the same model, data and number of optimizer steps.

torch-lr-finder runs one exponential sweep from the smallest to the largest candidate and
suggests the learning rate of the steepest gradient of its smoothed loss; smallml trains every
candidate of the grid from the same checkpoint and picks the steepest fitted slope. Both take
``len(lrs) * num_batches`` optimizer steps. Over 10 seeds, each suggestion (torch-lr-finder's
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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch_lr_finder import LRFinder

from smallml.lab import engine, runs
from smallml.lab.experiments import lr_range_test as experiment
from smallml.tuning import OPTIMIZERS, lr_range_test

SEEDS = range(10)
REPEATS = 5


def ours(cfg: experiment.Config, problem: experiment.Problem, seed: int) -> int | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lr_range_test(
            problem.model,
            F.cross_entropy,
            experiment.batch_stream(problem),
            lrs=cfg.lrs,
            num_batches=cfg.num_batches,
            optimizer=cfg.optimizer,
            num_bootstrap=cfg.num_bootstrap,
            random_state=seed,
        )
    return result.best_index


def theirs(cfg: experiment.Config, problem: experiment.Problem) -> int | None:
    model = problem.model
    optimizer = OPTIMIZERS[cfg.optimizer](list(model.parameters()), min(cfg.lrs))
    finder = LRFinder(model, optimizer, F.cross_entropy, device="cpu")
    steps = len(cfg.lrs) * cfg.num_batches
    finder.range_test(
        problem.train, start_lr=min(cfg.lrs), end_lr=max(cfg.lrs), num_iter=steps, step_mode="exp"
    )
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


def _median_time(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def truths_from_full_run(cfg: experiment.Config) -> dict[int, int]:
    """The truly best candidate per seed from the latest finished full ``lr-range-test`` run
    under ``$SMALLML_RUNS`` (default ``runs/``) with this exact configuration, if there is one.

    Finding the truth costs 3 trainings of every candidate for every seed (the bulk of the
    experiment's time); the benchmark reuses it rather than repeating it.
    """
    root = Path(os.environ.get("SMALLML_RUNS", "runs")) / "lr-range-test"
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
    rows = {"smallml lr_range_test (slope)": [], "torch-lr-finder (steepest gradient)": []}
    known = truths_from_full_run(cfg)
    for seed in SEEDS:
        problem = experiment.make_problem(cfg, seed, device)
        if seed in known:
            truth = known[seed]
        else:
            truth = int(np.argmin(experiment.trained_val_losses(cfg, problem, seed)))
        for name, pick in (
            ("smallml lr_range_test (slope)", ours(cfg, problem, seed)),
            ("torch-lr-finder (steepest gradient)", theirs(cfg, problem)),
        ):
            rows[name].append((pick is not None and abs(pick - truth) <= 1, pick == truth))

    problem = experiment.make_problem(cfg, 0, device)
    time_ours = _median_time(lambda: ours(cfg, problem, 0))
    time_theirs = _median_time(lambda: theirs(cfg, problem))
    steps = len(cfg.lrs) * cfg.num_batches
    lines = [
        f"Digits, SmallCNN(width={cfg.width}), {cfg.optimizer}, batch {cfg.batch_size}, "
        f"grid {len(cfg.lrs)} candidates {min(cfg.lrs):.0e}..{max(cfg.lrs):.0e}, "
        f"{steps} optimizer steps each; truth = best validation loss after "
        f"{cfg.truth_epochs} epochs with each candidate; {len(SEEDS)} seeds.",
        "",
        "| method | median time (s) | time ratio | within one grid step of truth | exact |",
        "|---|---|---|---|---|",
    ]
    for name, measured in (
        ("smallml lr_range_test (slope)", time_ours),
        ("torch-lr-finder (steepest gradient)", time_theirs),
    ):
        hits = np.array(rows[name], dtype=float)
        lines.append(
            f"| {name} | {measured:.2f} | {measured / time_theirs:.2f} | "
            f"{hits[:, 0].mean():.0%} | {hits[:, 1].mean():.0%} |"
        )
    lines.append("")
    lines.append(f"smallml's time includes {cfg.num_bootstrap} bootstrap resamples of the slopes.")
    source = "a full lr-range-test run" if known else "training here"
    lines.append(f"Truth for {len(known) or len(SEEDS)} seeds taken from {source}.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
