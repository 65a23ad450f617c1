"""Does autoencoder pretraining speed up a classifier on 200 Fashion-MNIST labels with more
budget? (issue 26, item 4)

The ``autoencoder`` claim: the classifier with the pretrained encoder reaches the scratch model's
final test accuracy in fewer epochs. The 0.1.0 full preset (autoencoder 10 epochs on 2,000
images, classifiers 20 epochs on 200 labels) did not hold it on Fashion-MNIST. This script runs
the lab's ``autoencoder`` experiment through ``mltricks run`` with the classifiers trained for
``--clf-epochs`` epochs (their per-epoch test accuracy is in metrics.json, and a shorter budget is
a prefix of it: constant learning rate, the same batches), for three pretraining budgets:
autoencoder epochs 10 and 30 on 2,000 images, and 10 epochs on 8,000 images (``max_train``: the
unlabelled images; the 200 labels are drawn from them).

For each classifier budget ``E`` it recomputes the claim's numbers from the curves' first ``E``
epochs: the scratch model's final accuracy (mean of its last 3 epochs), the pretrained one's, and
the epochs each needs to reach the scratch model's final accuracy; logistic regression on the same
200 labelled images is the baseline. It prints a Markdown table (means over seeds), writes
``docs/figures/budget-autoencoder.png``, and reuses a finished run found under ``--out``. Usage::

    OMP_NUM_THREADS=1 python scripts/budget_autoencoder.py --seeds 0,1 --out runs-budget/ae
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

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "budget-autoencoder.png"
# (run tag, autoencoder epochs, images read: the autoencoder's and the labels' pool)
SETTINGS = (("ae10-n2000", 10, 2000), ("ae30-n2000", 30, 2000), ("ae10-n8000", 10, 8000))
BUDGETS = (10, 20, 30, 40, 60)  # classifier epochs
WINDOW = 3  # the experiment's final_window


def run_lab(tag: str, ae_epochs: int, max_train: int, args: argparse.Namespace) -> Path:
    """The run folder of one setting: found under ``args.out/tag`` when finished, else run."""
    folder = Path(args.out) / tag
    for status in sorted(folder.glob("autoencoder/*/status.json")):
        if json.loads(status.read_text()).get("state") == "done":
            return status.parent
    command = [sys.executable, "-m", "mltricks.lab", "run", "autoencoder", "--preset", "full"]
    command += ["--data", args.data, "--seeds", args.seeds, "--out", str(folder)]
    for key, value in (
        ("ae_epochs", ae_epochs),
        ("max_train", max_train),
        ("clf_epochs", args.clf_epochs),
    ):
        command += ["--set", f"{key}={value}"]
    print(" ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run_lab(tag, ae_epochs, max_train, args)


def epochs_to_reach(curve: np.ndarray, target: float) -> int:
    """First epoch (from 1) at ``target`` or above; ``len(curve) + 1`` if none (as the lab)."""
    reached = np.nonzero(curve >= target - 1e-9)[0]
    return int(reached[0]) + 1 if len(reached) else len(curve) + 1


def at_budget(scratch: np.ndarray, pretrained: np.ndarray, epochs: int) -> dict[str, float]:
    """The claim's numbers of one seed had the classifiers trained for ``epochs`` epochs."""
    scratch, pretrained = scratch[:epochs], pretrained[:epochs]
    target = float(scratch[-WINDOW:].mean())
    return {
        "final_scratch": target,
        "final_pretrained": float(pretrained[-WINDOW:].mean()),
        "to_target_scratch": epochs_to_reach(scratch, target),
        "to_target_pretrained": epochs_to_reach(pretrained, target),
    }


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--clf-epochs", type=int, default=max(BUDGETS))
    parser.add_argument("--out", default="runs-budget/autoencoder")
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)

    lines = [
        "| autoencoder epochs | images (unlabelled pool) | classifier epochs | scratch final "
        "| pretrained final | logistic regression | epochs to scratch final: pretrained "
        "| scratch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cpu = []
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (tag, ae_epochs, max_train) in enumerate(SETTINGS):
        run = run_lab(tag, ae_epochs, max_train, args)
        cpu.append(json.loads((run / "status.json").read_text()).get("cpu_s", float("nan")))
        per_seed = json.loads((run / "metrics.json").read_text())["per_seed"].values()
        scratch = np.array([seed["accuracy_curve_scratch"] for seed in per_seed])
        pretrained = np.array([seed["accuracy_curve_pretrained"] for seed in per_seed])
        logreg = float(np.mean([seed["accuracy_logreg"] for seed in per_seed]))
        label = f"AE {ae_epochs} epochs, {max_train} images"
        epochs = np.arange(1, scratch.shape[1] + 1)
        left.plot(epochs, pretrained.mean(0), "-", color=f"C{i}", label=f"pretrained, {label}")
        left.plot(epochs, scratch.mean(0), "--", color=f"C{i}", lw=1, label=f"scratch, {label}")
        left.axhline(logreg, color=f"C{i}", ls=":", lw=1)
        gaps = []
        for budget in (b for b in BUDGETS if b <= scratch.shape[1]):
            rows = [at_budget(s, p, budget) for s, p in zip(scratch, pretrained)]
            mean = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
            gaps.append(mean["to_target_scratch"] - mean["to_target_pretrained"])
            lines.append(
                f"| {ae_epochs} | {max_train} | {budget} | {mean['final_scratch']:.3f} | "
                f"{mean['final_pretrained']:.3f} | {logreg:.3f} | "
                f"{mean['to_target_pretrained']:.1f} | {mean['to_target_scratch']:.1f} |"
            )
        budgets = [b for b in BUDGETS if b <= scratch.shape[1]]
        right.plot(budgets, gaps, "-o", ms=4, color=f"C{i}", label=label)
    left.set(xlabel="classifier epoch (7 steps of 32 of the 200 labels)", ylabel="test accuracy")
    left.set_title(
        "solid: pretrained encoder; dashed: scratch; dotted: logistic regression", fontsize=9
    )
    left.legend(fontsize=7)
    right.axhline(0, color="0.5", lw=1)
    right.set(
        xlabel="classifier epochs (the budget)",
        ylabel="epochs saved by pretraining",
        title="scratch's epochs to its final accuracy minus the pretrained one's",
    )
    right.legend(fontsize=8)
    fig.suptitle(
        f"autoencoder pretraining on {args.data}, mean over seeds {args.seeds}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    lines.append("")
    lines.append(f"CPU time of the runs: {sum(cpu) / 60:.1f} min ({args.seeds}).")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
