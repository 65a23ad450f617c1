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

import _budget
import matplotlib.pyplot as plt
import numpy as np

EXPERIMENT = "autoencoder"
# (run tag, autoencoder epochs, images read: the autoencoder's and the labels' pool)
SETTINGS = (("ae10-n2000", 10, 2000), ("ae30-n2000", 30, 2000), ("ae10-n8000", 10, 8000))
BUDGETS = (10, 20, 30, 40, 60)  # classifier epochs
WINDOW = 3  # the experiment's final_window


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
    parser = _budget.parser(__doc__, EXPERIMENT, seeds="0,1")
    parser.add_argument("--clf-epochs", type=int, default=max(BUDGETS))
    args = parser.parse_args(argv)

    table = _budget.MarkdownTable()
    cpu_s = 0.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (tag, ae_epochs, max_train) in enumerate(SETTINGS):
        sets = {"ae_epochs": ae_epochs, "max_train": max_train, "clf_epochs": args.clf_epochs}
        result = _budget.measure(args, EXPERIMENT, tag, sets)
        cpu_s += result.cpu_s
        scratch = result.values("accuracy_curve_scratch")  # (seeds, epochs)
        pretrained = result.values("accuracy_curve_pretrained")
        logreg = float(result.values("accuracy_logreg").mean())
        label = f"AE {ae_epochs} epochs, {max_train} images"
        epochs = np.arange(1, scratch.shape[1] + 1)
        left.plot(epochs, pretrained.mean(0), "-", color=f"C{i}", label=f"pretrained, {label}")
        left.plot(epochs, scratch.mean(0), "--", color=f"C{i}", lw=1, label=f"scratch, {label}")
        left.axhline(logreg, color=f"C{i}", ls=":", lw=1)
        budgets = [b for b in BUDGETS if b <= scratch.shape[1]]
        gaps = []
        for budget in budgets:
            rows = [at_budget(s, p, budget) for s, p in zip(scratch, pretrained)]
            mean = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
            gaps.append(mean["to_target_scratch"] - mean["to_target_pretrained"])
            table.add(
                {
                    "autoencoder epochs": ae_epochs,
                    "images (unlabelled pool)": max_train,
                    "classifier epochs": budget,
                    "scratch final": mean["final_scratch"],
                    "pretrained final": mean["final_pretrained"],
                    "logistic regression": logreg,
                    "epochs to scratch final: pretrained": f"{mean['to_target_pretrained']:.1f}",
                    "scratch": f"{mean['to_target_scratch']:.1f}",
                }
            )
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
    title = f"autoencoder pretraining on {args.data}, mean over seeds {args.seeds}"
    _budget.save_figure(fig, args.figure, title)
    return f"{table}\n\n{_budget.cpu_footer(cpu_s, args.seeds)}"


if __name__ == "__main__":
    print(main())
