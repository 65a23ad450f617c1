"""How MIMO's gain over one network moves with the budget on Fashion-MNIST (issue 26, item 4).

The ``mimo`` claim asks that M = 3 members in one network reach a lower ensemble test NLL than
M = 1; the 0.1.0 full preset (4 epochs on 3,000 images at width 16) left M = 3 behind (NLL 0.87
against 0.70). This script runs the lab's ``mimo`` experiment through ``mltricks run`` (full
preset with ``--data``, M = 1 and 3 only, the deep ensemble and the ResNet-18 timing left out:
they do not change the trained networks) for training epochs x backbone widths, and prints a
Markdown table of the paired NLL difference M = 3 - M = 1, both NLLs and accuracies, with each
setting's CPU time; it writes the figure ``docs/figures/budget-mimo.png``. Each epoch count is
its own run, because the learning rate decays to 0 over the run (cosine). A finished run found
under ``--out`` is reused (delete it to measure again). Usage::

    OMP_NUM_THREADS=1 python scripts/budget_mimo.py --seeds 0,1 --out runs-budget/mimo
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

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "budget-mimo.png"
EPOCHS = {16: (4, 10, 20, 40, 80), 32: (4, 10, 20, 40)}  # width: epoch counts measured
METRICS = ("nll_diff_m3", "nll_m1", "nll_m3", "acc_m1", "acc_m3", "member_acc_m3")


def run_lab(width: int, epochs: int, seed: int, args: argparse.Namespace) -> Path:
    """The run folder of one setting and seed: found under ``args.out`` when finished, else
    run (one run per seed, so that a later call with more seeds reuses the earlier ones)."""
    folder = Path(args.out) / f"width{width}-epochs{epochs}" / f"seed{seed}"
    for status in sorted(folder.glob("mimo/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    sets = {
        "members": "1,3",
        "deep_ensemble_size": 1,
        "cost_backbone": "cnn",
        "timing_repeats": 1,
        "width": width,
        "epochs": epochs,
        **dict(item.split("=", 1) for item in args.set),
    }
    command = [sys.executable, "-m", "mltricks.lab", "run", "mimo", "--preset", "full"]
    command += ["--data", args.data, "--seeds", str(seed), "--out", str(folder)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run_lab(width, epochs, seed, args)


def measure(width: int, epochs: int, args: argparse.Namespace) -> tuple[dict, float]:
    """Each metric's per-seed values ``(seeds,)`` of one setting, and the runs' CPU seconds."""
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    cpu = 0.0
    for seed in map(int, args.seeds.split(",")):
        run = run_lab(width, epochs, seed, args)
        cpu += json.loads((run / "status.json").read_text()).get("cpu_s", float("nan"))
        (metrics,) = json.loads((run / "metrics.json").read_text())["per_seed"].values()
        for name in METRICS:
            values[name].append(metrics[name])
    return {name: np.array(v, dtype=float) for name, v in values.items()}, cpu


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="runs-budget/mimo")
    parser.add_argument("--figure", default=str(FIGURE))
    parser.add_argument("--set", action="append", default=[], help="more --set k=v for every run")
    args = parser.parse_args(argv)

    lines = [
        "| width | epochs | NLL M=3 - M=1 (seeds) | NLL M=1 | NLL M=3 | accuracy M=1 | "
        "accuracy M=3 | member accuracy M=3 | CPU min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for width, epoch_counts in EPOCHS.items():
        curve = []
        for epochs in epoch_counts:
            values, cpu = measure(width, epochs, args)
            curve.append(values)
            seeds = ", ".join(f"{v:+.3f}" for v in values["nll_diff_m3"])
            means = " | ".join(f"{values[name].mean():.3f}" for name in METRICS[1:])
            lines.append(
                f"| {width} | {epochs} | {values['nll_diff_m3'].mean():+.3f} ({seeds}) | "
                f"{means} | {cpu / 60:.1f} |"
            )
        diff = [c["nll_diff_m3"].mean() for c in curve]
        axes[0].plot(epoch_counts, diff, "o-", label=f"width {width}")
        for key, style in (("nll_m1", "o-"), ("nll_m3", "s--")):
            axes[1].plot(
                epoch_counts,
                [c[key].mean() for c in curve],
                style,
                label=f"{'M = 1' if key == 'nll_m1' else 'M = 3'}, width {width}",
            )
    axes[0].axhline(0, color="0.5", lw=1)
    axes[0].set(xscale="log", xlabel="epochs", ylabel="test NLL, M = 3 minus M = 1")
    axes[1].set(xscale="log", xlabel="epochs", ylabel="ensemble test NLL")
    for ax in axes:
        ticks = sorted({e for counts in EPOCHS.values() for e in counts})
        ax.set_xticks(ticks, [str(e) for e in ticks])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"MIMO on {args.data}, mean over seeds {args.seeds}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
