"""How consistency-regularization's test accuracies move with the training budget on
Fashion-MNIST (issue 26, items 4 and 5).

The 0.1.0 full preset trained 400 steps at width 16: the validation-chosen lambda scored 0.722
with 7% labels and 0.721 with 14% on MNIST, so the step budget, not the labels, set the result,
and the paired gain over lambda = 0 reached below 0. This script runs the lab's
``consistency-regularization`` experiment through ``mltricks run`` for each optimizer-step budget
below, with the full preset's ``--data`` settings (width 32, the 1,337 unlabeled images, a
250-step ramp) and two candidate weights, lambda 0 and 1 (``--set lambdas=0,1``), at 7% labels
and at 14% (``--set sweep_shares=0.14``); the cosine schedule anneals to 0 at the end of each
budget, so each point is a training of its own, not a prefix of a longer one.

It prints a Markdown table (mean over seeds; the paired gain with each seed's value), writes the
figure ``docs/figures/budget-consistency-regularization.png``, and reuses a finished run found
under ``--out`` (delete it to measure again). Usage::

    OMP_NUM_THREADS=1 python scripts/budget_consistency_regularization.py --out runs-budget/cr
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

EXPERIMENT = "consistency-regularization"
FIGURE = (
    Path(__file__).resolve().parents[1]
    / "docs"
    / "figures"
    / "budget-consistency-regularization.png"
)
STEPS = (250, 500, 1000, 2000)
SWEEP_SHARE = 0.14


def run_lab(steps: int, args: argparse.Namespace) -> Path:
    """The run folder of one setting: found under ``args.out`` when finished, else run."""
    folder = Path(args.out) / f"steps{steps}"
    for status in sorted(folder.glob(f"{EXPERIMENT}/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    sets = {"lambdas": "0,1", "sweep_shares": SWEEP_SHARE, "steps": steps}
    command = [sys.executable, "-m", "mltricks.lab", "run", EXPERIMENT, "--preset", "full"]
    command += ["--data", args.data, "--seeds", args.seeds, "--out", str(folder)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run_lab(steps, args)


def per_seed(run: Path) -> dict[str, np.ndarray]:
    """The metrics of the table over the run's seeds, in seed order."""
    seeds = list(json.loads((run / "metrics.json").read_text())["per_seed"].values())
    values = {
        name: np.array([s[name] for s in seeds])
        for name in (
            "test_accuracy_lambda_0",
            "test_accuracy_lambda_1",
            "test_accuracy_chosen",
            "accuracy_gain_chosen",
            "test_accuracy_logreg",
        )
    }
    rows = [next(row for row in s["sweep"] if row["share"] == SWEEP_SHARE) for s in seeds]
    values["lambda_0_14"] = np.array([row["lambda_0"]["test_accuracy"] for row in rows])
    values["chosen_14"] = np.array([row["chosen"]["test_accuracy"] for row in rows])
    values["logreg_14"] = np.array([row["logreg"] for row in rows])
    return values


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="runs-budget/consistency-regularization")
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)

    lines = [
        "| steps | lambda 0 | lambda 1 | chosen | paired gain (seeds) | logistic regression | "
        "lambda 0, 14% | chosen, 14% | logistic regression, 14% | CPU min per seed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = {}
    for steps in STEPS:
        run = run_lab(steps, args)
        values = per_seed(run)
        table[steps] = {name: v.mean() for name, v in values.items()}
        m = table[steps]
        cpu = json.loads((run / "status.json").read_text()).get("cpu_s", float("nan"))
        gains = ", ".join(f"{g:+.3f}" for g in values["accuracy_gain_chosen"])
        lines.append(
            f"| {steps} | {m['test_accuracy_lambda_0']:.3f} | {m['test_accuracy_lambda_1']:.3f} | "
            f"{m['test_accuracy_chosen']:.3f} | {m['accuracy_gain_chosen']:+.3f} ({gains}) | "
            f"{m['test_accuracy_logreg']:.3f} | {m['lambda_0_14']:.3f} | {m['chosen_14']:.3f} | "
            f"{m['logreg_14']:.3f} | {cpu / 60 / len(values['accuracy_gain_chosen']):.1f} |"
        )
    fig, (ax, ax_share) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for key, label, color in (
        ("test_accuracy_lambda_0", "lambda = 0", "0.5"),
        ("test_accuracy_lambda_1", "lambda = 1", "C0"),
        ("test_accuracy_chosen", "chosen on validation", "C2"),
    ):
        ax.plot(STEPS, [table[s][key] for s in STEPS], "-o", ms=4, color=color, label=label)
    ax.axhline(table[STEPS[0]]["test_accuracy_logreg"], color="C3", ls="--", lw=1)
    for key, label, color, style in (
        ("test_accuracy_lambda_0", "lambda = 0, 7% labels", "0.5", "-o"),
        ("lambda_0_14", "lambda = 0, 14% labels", "0.2", "-s"),
        ("chosen_14", "chosen, 14% labels", "C2", "-s"),
    ):
        ax_share.plot(STEPS, [table[s][key] for s in STEPS], style, ms=4, color=color, label=label)
    ax_share.axhline(table[STEPS[0]]["logreg_14"], color="C3", ls=":", lw=1)
    ax.plot([], [], "--", color="C3", lw=1, label="logistic regression, 7%")
    ax_share.plot([], [], ":", color="C3", lw=1, label="logistic regression, 14%")
    ax.set(ylabel="test accuracy", title="7% labels (100, 30 of them validation)")
    ax_share.set(title="labels or steps?")
    for axis in (ax, ax_share):
        axis.set(xscale="log", xlabel="optimizer steps")
        axis.set_xticks(STEPS, [str(s) for s in STEPS])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(f"{EXPERIMENT} on {args.data}, mean over seeds {args.seeds}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
