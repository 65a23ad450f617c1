"""How the 2-d embedding's k-NN accuracy moves with the training budget on Fashion-MNIST, per
triplet mining (issue 26, item 4).

The ``triplet-embeddings`` claim: hard mining reaches a higher k-NN accuracy in the 2-d embedding
than random mining. The 0.1.0 full preset (10 epochs at width 16) did not hold it on
Fashion-MNIST: hardest negatives from the first step collapsed the embedding. This script runs
the lab's ``triplet-embeddings`` experiment through ``mltricks run`` with hard, semi-hard and
random mining and the softmax baseline (the 2-d embedding of a plain softmax classifier of the
same size): 40 epochs at the preset's SmallCNN width 16, and 20 epochs at width 32 (2.8x the
cost per step), and reads the k-NN accuracy of the
validation images after every epoch that the runs record (``val_knn_curve_<method>`` with
``--set curve_every=1``; a shorter
budget is a prefix of the same training: constant learning rate, the same batches).

It prints a Markdown table (mean over seeds), writes ``docs/figures/budget-triplet-embeddings.png``
and reuses a finished run found under ``--out`` (delete it to measure again). Usage::

    OMP_NUM_THREADS=1 python scripts/budget_triplet_embeddings.py --seeds 0,1 --out runs-budget/te
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

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "budget-triplet-embeddings.png"
METHODS = ("hard", "semi_hard", "random", "softmax")
WIDTHS = {16: 40, 32: 20}  # width: epochs
BUDGETS = (5, 10, 15, 20, 30, 40)


def run_lab(width: int, seeds: str, args: argparse.Namespace) -> Path:
    """The run folder of one width: found under ``args.out/width<w>`` when finished, else run."""
    folder = Path(args.out) / f"width{width}"
    for status in sorted(folder.glob("triplet-embeddings/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    command = [sys.executable, "-m", "mltricks.lab", "run", "triplet-embeddings"]
    command += ["--preset", "full", "--data", args.data, "--seeds", seeds, "--out", str(folder)]
    for key, value in (
        ("epochs", WIDTHS[width]),
        ("width", width),
        ("methods", ",".join(METHODS)),
        ("projection_dim", 0),
        ("curve_every", 1),
    ):
        command += ["--set", f"{key}={value}"]
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run_lab(width, seeds, args)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1", help="seeds of the width-16 runs")
    parser.add_argument("--wide-seeds", default="0", help="seeds of the width-32 runs")
    parser.add_argument("--out", default="runs-budget/triplet-embeddings")
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)

    header = " | ".join(m.replace("_", "-") for m in METHODS)
    lines = [
        f"| width | epochs | {header} | mean pairwise distance at the end (hard) |",
        "|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    cpu = []
    fig, axes = plt.subplots(1, len(WIDTHS), figsize=(6 * len(WIDTHS), 4), squeeze=False)
    for ax, width in zip(axes[0], WIDTHS):
        seeds = args.seeds if width == WIDTHS[0] else args.wide_seeds
        run = run_lab(width, seeds, args)
        cpu.append(json.loads((run / "status.json").read_text()).get("cpu_s", float("nan")))
        per_seed = list(json.loads((run / "metrics.json").read_text())["per_seed"].values())
        curves = {m: np.array([seed[f"val_knn_curve_{m}"] for seed in per_seed]) for m in METHODS}
        distance = np.mean([seed["mean_pairwise_distance_hard"] for seed in per_seed])
        for i, method in enumerate(METHODS):
            epochs = np.arange(1, curves[method].shape[1] + 1)
            ax.plot(epochs, curves[method].mean(0), "-", color=f"C{i}", label=method)
        for budget in (b for b in BUDGETS if b <= WIDTHS[width]):
            cells = " | ".join(f"{curves[m][:, budget - 1].mean():.3f}" for m in METHODS)
            end = f"{distance:.2f}" if budget == WIDTHS[width] else ""
            lines.append(f"| {width} | {budget} | {cells} | {end} |")
        ax.set(
            xlabel="epoch",
            ylabel="k-NN accuracy of the validation images",
            title=f"2-d embedding, SmallCNN width {width}, seeds {seeds}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"triplet mining on {args.data}: k-NN accuracy over training", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    lines.append("")
    lines.append(f"CPU time of the runs: {sum(cpu) / 60:.1f} min.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
