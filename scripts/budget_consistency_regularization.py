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

import _budget
import matplotlib.pyplot as plt
import numpy as np

EXPERIMENT = "consistency-regularization"
STEPS = (250, 500, 1000, 2000)
SWEEP_SHARE = 0.14
METRICS = (
    "test_accuracy_lambda_0",
    "test_accuracy_lambda_1",
    "test_accuracy_chosen",
    "accuracy_gain_chosen",
    "test_accuracy_logreg",
)


def per_seed(result: _budget.Measurement) -> dict[str, np.ndarray]:
    """The metrics of the table over the run's seeds, in seed order, those of the
    ``SWEEP_SHARE`` labels read from each seed's label sweep."""
    values = {name: result.values(name) for name in METRICS}
    rows = [
        next(row for row in seed["sweep"] if row["share"] == SWEEP_SHARE)
        for seed in result.per_seed
    ]
    values["lambda_0_14"] = np.array([row["lambda_0"]["test_accuracy"] for row in rows])
    values["chosen_14"] = np.array([row["chosen"]["test_accuracy"] for row in rows])
    values["logreg_14"] = np.array([row["logreg"] for row in rows])
    return values


def main(argv: list[str] | None = None) -> str:
    args = _budget.parser(__doc__, EXPERIMENT, seeds="0,1").parse_args(argv)
    table = _budget.MarkdownTable()
    means = {}
    for steps in STEPS:
        sets = {"lambdas": "0,1", "sweep_shares": SWEEP_SHARE, "steps": steps}
        result = _budget.measure(args, EXPERIMENT, f"steps{steps}", sets)
        values = per_seed(result)
        means[steps] = m = {name: v.mean() for name, v in values.items()}
        table.add(
            {
                "steps": steps,
                "lambda 0": m["test_accuracy_lambda_0"],
                "lambda 1": m["test_accuracy_lambda_1"],
                "chosen": m["test_accuracy_chosen"],
                "paired gain (seeds)": _budget.mean_and_seeds(values["accuracy_gain_chosen"]),
                "logistic regression": m["test_accuracy_logreg"],
                "lambda 0, 14%": m["lambda_0_14"],
                "chosen, 14%": m["chosen_14"],
                "logistic regression, 14%": m["logreg_14"],
                "CPU min per seed": f"{result.cpu_min_per_seed:.1f}",
            }
        )
    fig, (ax, ax_share) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for key, label, color in (
        ("test_accuracy_lambda_0", "lambda = 0", "0.5"),
        ("test_accuracy_lambda_1", "lambda = 1", "C0"),
        ("test_accuracy_chosen", "chosen on validation", "C2"),
    ):
        ax.plot(STEPS, [means[s][key] for s in STEPS], "-o", ms=4, color=color, label=label)
    ax.axhline(means[STEPS[0]]["test_accuracy_logreg"], color="C3", ls="--", lw=1)
    for key, label, color, style in (
        ("test_accuracy_lambda_0", "lambda = 0, 7% labels", "0.5", "-o"),
        ("lambda_0_14", "lambda = 0, 14% labels", "0.2", "-s"),
        ("chosen_14", "chosen, 14% labels", "C2", "-s"),
    ):
        ax_share.plot(STEPS, [means[s][key] for s in STEPS], style, ms=4, color=color, label=label)
    ax_share.axhline(means[STEPS[0]]["logreg_14"], color="C3", ls=":", lw=1)
    ax.plot([], [], "--", color="C3", lw=1, label="logistic regression, 7%")
    ax_share.plot([], [], ":", color="C3", lw=1, label="logistic regression, 14%")
    ax.set(ylabel="test accuracy", title="7% labels (100, 30 of them validation)")
    ax_share.set(title="labels or steps?")
    for axis in (ax, ax_share):
        axis.set(xlabel="optimizer steps")
    _budget.log_axes((ax, ax_share), STEPS, legend_size=7)
    title = f"{EXPERIMENT} on {args.data}, mean over seeds {args.seeds}"
    _budget.save_figure(fig, args.figure, title)
    return str(table)


if __name__ == "__main__":
    print(main())
