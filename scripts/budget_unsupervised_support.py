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

import _budget
import matplotlib.pyplot as plt
import numpy as np

EXPERIMENT = "unsupervised-support"
# (width, optimizer steps): the step sweep at the preset's width 32, two points at width 16
SETTINGS = ((32, (250, 500, 1000, 2000)), (16, (1000, 2000)))
METRICS = ("test_accuracy_ce", "test_accuracy_both", "test_accuracy_logreg", "accuracy_gain_both")


def main(argv: list[str] | None = None) -> str:
    args = _budget.parser(__doc__, EXPERIMENT, seeds="0,1").parse_args(argv)
    table = _budget.MarkdownTable()
    fig, (ax, ax_gain) = plt.subplots(1, 2, figsize=(11, 4))
    for width, budgets in SETTINGS:
        rows = []
        for steps in budgets:
            sets = {"variants": "ce,both", "width": width, "steps": steps}
            result = _budget.measure(args, EXPERIMENT, f"width{width}-steps{steps}", sets)
            values = {name: result.values(name) for name in METRICS}
            mean = {name: v.mean() for name, v in values.items()}
            rows.append((steps, mean))
            table.add(
                {
                    "width": width,
                    "steps": steps,
                    "CE only": mean["test_accuracy_ce"],
                    "CE + ST + ME": mean["test_accuracy_both"],
                    "logistic regression": mean["test_accuracy_logreg"],
                    "paired gain (seeds)": _budget.mean_and_seeds(values["accuracy_gain_both"]),
                    "CPU min per seed": f"{result.cpu_min_per_seed:.1f}",
                }
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
    ax.set(xlabel="optimizer steps (16 labeled + 32 unlabeled images each)")
    ax.set(ylabel="test accuracy", title="mean over seeds")
    ax_gain.axhline(0.0, color="k", lw=0.6)
    ax_gain.set(xlabel="optimizer steps", title="paired gain of CE + ST + ME")
    all_steps = sorted({s for _, budgets in SETTINGS for s in budgets})
    _budget.log_axes((ax, ax_gain), all_steps, legend_size=7)
    title = f"{EXPERIMENT} on {args.data}, 100 labels, seeds {args.seeds}"
    _budget.save_figure(fig, args.figure, title)
    return str(table)


if __name__ == "__main__":
    print(main())
