"""How cluster-then-label's test accuracy moves with its budget, the number of clusters, on
Fashion-MNIST (issue 26, items 4 and 5).

With as many clusters as classes (the experiment's ``n_clusters=10``), ClusterThenLabel stays
below logistic regression on the same labeled samples: a cluster predicts one class, so a vote
over ten k-means clusters is capped by how well they follow the classes, which the experiment
measures as ``acc_kmeans_all_labels`` (k-means voted by every pool label). More clusters raise
that cap and leave fewer labels per cluster. This script runs the lab's ``cluster-then-label``
experiment (full preset: the alpha sweep chosen on validation, every labeled share) through
``mltricks run`` for each number of clusters below.

It prints a Markdown table (mean over seeds), writes the figure
``docs/figures/budget-cluster-then-label.png``, and reuses a finished run found under ``--out``
(delete it to measure again). Usage::

    OMP_NUM_THREADS=1 python scripts/budget_cluster_then_label.py --out runs-budget/ctl
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

EXPERIMENT = "cluster-then-label"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "budget-cluster-then-label.png"
CLUSTERS = (10, 20, 40, 80)
TAGS = ("1pct", "2pct", "5pct", "10pct")


def run_lab(clusters: int, args: argparse.Namespace) -> Path:
    """The run folder of one setting: found under ``args.out`` when finished, else run."""
    folder = Path(args.out) / f"clusters{clusters}"
    for status in sorted(folder.glob(f"{EXPERIMENT}/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    command = [sys.executable, "-m", "mltricks.lab", "run", EXPERIMENT, "--preset", "full"]
    command += ["--data", args.data, "--seeds", args.seeds, "--out", str(folder)]
    command += ["--set", f"n_clusters={clusters}"]
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run_lab(clusters, args)


def means(run: Path) -> dict[str, float]:
    """The mean over seeds of every scalar metric of the run (``summarize``'s included)."""
    summary = json.loads((run / "metrics.json").read_text())["summary"]
    return {name: value["mean"] for name, value in summary.items() if isinstance(value, dict)}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs-budget/cluster-then-label")
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)

    lines = [
        "| clusters | labeled | ClusterThenLabel (chosen alpha) | alpha = 0 | logistic "
        "regression | k-means voted by every label | CPU min per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    table = {}
    for clusters in CLUSTERS:
        run = run_lab(clusters, args)
        table[clusters] = values = means(run)
        cpu = json.loads((run / "status.json").read_text()).get("cpu_s", float("nan"))
        seeds = len(args.seeds.split(","))
        for tag in TAGS:
            lines.append(
                f"| {clusters} | {tag.replace('pct', '%')} | {values[f'acc_ctl_best_{tag}']:.3f} | "
                f"{values[f'acc_ctl_alpha0_{tag}']:.3f} | {values[f'acc_logreg_{tag}']:.3f} | "
                f"{values['acc_kmeans_all_labels']:.3f} | {cpu / 60 / seeds:.2f} |"
            )
    fig, axes = plt.subplots(1, len(TAGS), figsize=(13, 3.6), sharey=True)
    for ax, tag in zip(axes, TAGS):
        for key, label, style in (
            ("acc_ctl_best", "ClusterThenLabel, chosen alpha", "-o"),
            ("acc_ctl_alpha0", "alpha = 0 (k-means + vote)", "-s"),
            ("acc_logreg", "logistic regression, labeled", "--"),
        ):
            ax.plot(
                CLUSTERS, [table[k][f"{key}_{tag}"] for k in CLUSTERS], style, ms=4, label=label
            )
        ceiling = [table[k]["acc_kmeans_all_labels"] for k in CLUSTERS]
        ax.plot(CLUSTERS, ceiling, ":", color="0.4", label="k-means voted by every label")
        ax.set(xscale="log", xlabel="clusters", title=f"{tag.replace('pct', '%')} labeled")
        ax.set_xticks(CLUSTERS, [str(k) for k in CLUSTERS])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{EXPERIMENT} on {args.data}, mean over seeds {args.seeds}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
