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

import _budget
import matplotlib.pyplot as plt
import numpy as np

EXPERIMENT = "triplet-embeddings"
METHODS = ("hard", "semi_hard", "random", "softmax")
WIDTHS = {16: 40, 32: 20}  # width: epochs
BUDGETS = (5, 10, 15, 20, 30, 40)


def main(argv: list[str] | None = None) -> str:
    parser = _budget.parser(
        __doc__, EXPERIMENT, seeds="0,1", seeds_help="seeds of the width-16 runs"
    )
    parser.add_argument("--wide-seeds", default="0", help="seeds of the width-32 runs")
    args = parser.parse_args(argv)

    table = _budget.MarkdownTable()
    cpu_s = 0.0
    fig, axes = plt.subplots(1, len(WIDTHS), figsize=(6 * len(WIDTHS), 4), squeeze=False)
    for ax, (width, epochs) in zip(axes[0], WIDTHS.items()):
        seeds = args.seeds if width == 16 else args.wide_seeds
        sets = {
            "epochs": epochs,
            "width": width,
            "methods": ",".join(METHODS),
            "projection_dim": 0,
            "curve_every": 1,
        }
        result = _budget.measure(args, EXPERIMENT, f"width{width}", sets, seeds=seeds)
        cpu_s += result.cpu_s
        # (seeds, epochs): the k-NN accuracy of the validation images after each epoch
        curves = {m: result.values(f"val_knn_curve_{m}") for m in METHODS}
        distance = result.values("mean_pairwise_distance_hard").mean()
        for i, method in enumerate(METHODS):
            epoch = np.arange(1, curves[method].shape[1] + 1)
            ax.plot(epoch, curves[method].mean(0), "-", color=f"C{i}", label=method)
        for budget in (b for b in BUDGETS if b <= epochs):
            end = f"{distance:.2f}" if budget == epochs else ""
            table.add(
                {
                    "width": width,
                    "epochs": budget,
                    **{m.replace("_", "-"): curves[m][:, budget - 1].mean() for m in METHODS},
                    "mean pairwise distance at the end (hard)": end,
                }
            )
        ax.set(
            xlabel="epoch",
            ylabel="k-NN accuracy of the validation images",
            title=f"2-d embedding, SmallCNN width {width}, seeds {seeds}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    title = f"triplet mining on {args.data}: k-NN accuracy over training"
    _budget.save_figure(fig, args.figure, title)
    return f"{table}\n\n{_budget.cpu_footer(cpu_s)}"


if __name__ == "__main__":
    print(main())
