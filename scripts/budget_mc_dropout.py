"""How MC dropout's NLL against standard dropout moves with the budget on Fashion-MNIST (issue 26,
item 4).

The ``mc-dropout`` claims ask that 50 MC samples lower the test NLL of the same weights run once
with dropout off (standard dropout), and of that network calibrated by temperature scaling; the
0.1.0 full preset (10 epochs on 4,000 images) gave MC dropout a higher NLL, the standard network
being calibrated already. This script runs the lab's ``mc-dropout`` experiment through
``mltricks run`` (full preset with ``--data``) for a range of training epochs and prints a
Markdown table of the paired NLL differences (MC - standard, MC - temperature-scaled), the NLLs,
calibration errors, accuracies and the final training loss, with each setting's CPU time; it
writes the figure ``docs/figures/budget-mc-dropout.png``. A finished run found under ``--out``
is reused (delete it to measure again). Usage::

    OMP_NUM_THREADS=1 python scripts/budget_mc_dropout.py --seeds 0,1,2 --out runs-budget/mcd
"""

from __future__ import annotations

import _budget
import matplotlib.pyplot as plt
import numpy as np

EXPERIMENT = "mc-dropout"
EPOCHS = (5, 10, 20, 40, 80)
COLUMNS = (
    ("nll_diff_mc50", "NLL MC50 - standard"),
    ("nll_diff_mc50_vs_ts", "NLL MC50 - temperature-scaled"),
    ("nll_std", "NLL standard"),
    ("nll_mc50", "NLL MC50"),
    ("nll_ts", "NLL temperature-scaled"),
    ("ece_std", "ECE standard"),
    ("ece_mc50", "ECE MC50"),
    ("temperature", "temperature"),
    ("acc_std", "accuracy standard"),
    ("acc_mc50", "accuracy MC50"),
    ("acc_logreg", "accuracy logistic regression"),
    ("train_loss", "final training loss"),
)


def main(argv: list[str] | None = None) -> str:
    args = _budget.parser(__doc__, EXPERIMENT, seeds="0,1,2").parse_args(argv)
    table = _budget.MarkdownTable()
    curves: dict[str, list[np.ndarray]] = {name: [] for name, _ in COLUMNS}
    for epochs in EPOCHS:
        result = _budget.measure(args, EXPERIMENT, f"epochs{epochs}", {"epochs": epochs})
        row: dict[str, object] = {"epochs": epochs}
        for name, label in COLUMNS:
            values = result.values(name)
            curves[name].append(values)
            # the paired differences are the claims' numbers: each seed's value with the mean
            row[label] = _budget.mean_and_seeds(values) if "diff" in name else values.mean()
        row["CPU min"] = f"{result.cpu_s / 60:.1f}"
        table.add(row)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, label, style in (
        ("nll_std", "standard dropout", "o-"),
        ("nll_mc50", "MC dropout, 50 samples", "s-"),
        ("nll_ts", "standard, temperature-scaled", "^--"),
    ):
        axes[0].plot(EPOCHS, [v.mean() for v in curves[name]], style, label=label)
    for name, label, style in (
        ("nll_diff_mc50", "MC50 - standard", "o-"),
        ("nll_diff_mc50_vs_ts", "MC50 - temperature-scaled", "^--"),
    ):
        rows = np.array(curves[name])  # (epochs, seeds)
        axes[1].plot(EPOCHS, rows.mean(1), style, label=label)
        axes[1].fill_between(EPOCHS, rows.min(1), rows.max(1), alpha=0.2)
    axes[1].axhline(0, color="0.5", lw=1)
    axes[0].set(ylabel="test NLL")
    axes[1].set(ylabel="paired NLL difference (band: seeds' range)")
    for ax in axes:
        ax.set(xlabel="training epochs")
    _budget.log_axes(axes, EPOCHS)
    title = f"MC dropout on {args.data}, mean over seeds {args.seeds}"
    _budget.save_figure(fig, args.figure, title)
    return str(table)


if __name__ == "__main__":
    print(main())
