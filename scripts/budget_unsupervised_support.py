"""How unsupervised-support's test accuracies move with the training budget on Fashion-MNIST
(issue 26, items 4 and 5).

The 0.1.0 full preset trained 400 steps at width 16 with 640 unlabeled images: CE only and
CE + stability + mutual exclusivity both ended near logistic regression on the same 100 labeled
images, and the paired gain's interval reached below 0. This script runs the lab's
``unsupervised-support`` experiment (CE only and CE + ST + ME: ``--set variants=ce,both``; the
full preset's ``--data`` settings otherwise: 4,000 unlabeled images, a 250-step ramp) through
``mltricks run`` for each optimizer-step budget and width below; the cosine schedule anneals to
0 at the end of each budget, so each point is a training of its own, not a prefix of a longer
one.

It prints a Markdown table (mean over seeds; the paired gain with each seed's value), writes the
figure ``docs/figures/budget-unsupervised-support.png``, and reuses a finished run found under
``--out`` (delete it to measure again). Usage::

    OMP_NUM_THREADS=1 python scripts/budget_unsupervised_support.py --seeds 0,1 --out runs-budget/us
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

EXPERIMENT = "unsupervised-support"
FIGURE = (
    Path(__file__).resolve().parents[1] / "docs" / "figures" / "budget-unsupervised-support.png"
)
# (width, optimizer steps): the step sweep at the preset's width 32, two points at width 16
SETTINGS = ((32, (250, 500, 1000, 2000)), (16, (1000, 2000)))
METRICS = ("test_accuracy_ce", "test_accuracy_both", "test_accuracy_logreg", "accuracy_gain_both")


def run_lab(width: int, steps: int, args: argparse.Namespace) -> Path:
    """The run folder of one setting: found under ``args.out`` when finished, else run."""
    folder = Path(args.out) / f"width{width}-steps{steps}"
    for status in sorted(folder.glob(f"{EXPERIMENT}/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    sets = {"variants": "ce,both", "width": width, "steps": steps}
    command = [sys.executable, "-m", "mltricks.lab", "run", EXPERIMENT, "--preset", "full"]
    command += ["--data", args.data, "--seeds", args.seeds, "--out", str(folder)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run_lab(width, steps, args)


def per_seed(run: Path) -> dict[str, np.ndarray]:
    """Each metric of ``METRICS`` over the run's seeds, in seed order."""
    seeds = json.loads((run / "metrics.json").read_text())["per_seed"]
    return {name: np.array([values[name] for values in seeds.values()]) for name in METRICS}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="runs-budget/unsupervised-support")
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)

    lines = [
        "| width | steps | CE only | CE + ST + ME | logistic regression | paired gain "
        "(seeds) | CPU min per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    fig, (ax, ax_gain) = plt.subplots(1, 2, figsize=(11, 4))
    for width, budgets in SETTINGS:
        rows = []
        for steps in budgets:
            run = run_lab(width, steps, args)
            values = per_seed(run)
            cpu = json.loads((run / "status.json").read_text()).get("cpu_s", float("nan"))
            rows.append((steps, {name: v.mean() for name, v in values.items()}))
            gains = ", ".join(f"{g:+.3f}" for g in values["accuracy_gain_both"])
            lines.append(
                f"| {width} | {steps} | {values['test_accuracy_ce'].mean():.3f} | "
                f"{values['test_accuracy_both'].mean():.3f} | "
                f"{values['test_accuracy_logreg'].mean():.3f} | "
                f"{values['accuracy_gain_both'].mean():+.3f} ({gains}) | "
                f"{cpu / 60 / len(values['test_accuracy_ce']):.1f} |"
            )
        steps = [s for s, _ in rows]
        style = "-" if width == 32 else ":"
        for key, label, color in (
            ("test_accuracy_ce", "CE only", "0.5"),
            ("test_accuracy_both", "CE + ST + ME", "C2"),
        ):
            means = [m[key] for _, m in rows]
            ax.plot(steps, means, style, marker="o", ms=4, color=color, label=f"{label}, w{width}")
        gains = [m["accuracy_gain_both"] for _, m in rows]
        ax_gain.plot(steps, gains, style, marker="o", ms=4, color="C2", label=f"width {width}")
        if width == 32:
            logreg = np.mean([m["test_accuracy_logreg"] for _, m in rows])
            ax.axhline(logreg, color="C3", ls="--", lw=1, label="logistic regression")
    ax.set(xscale="log", xlabel="optimizer steps (16 labeled + 32 unlabeled images each)")
    ax.set(ylabel="test accuracy", title="mean over seeds")
    ax_gain.axhline(0.0, color="k", lw=0.6)
    ax_gain.set(xscale="log", xlabel="optimizer steps", title="paired gain of CE + ST + ME")
    for axis in (ax, ax_gain):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(f"{EXPERIMENT} on {args.data}, 100 labels, seeds {args.seeds}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
