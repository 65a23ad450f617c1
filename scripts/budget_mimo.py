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
    OMP_NUM_THREADS=1 python scripts/budget_mimo.py --widths 16   # width 16 only
"""

from __future__ import annotations

import argparse

import _budget
import matplotlib.pyplot as plt

EXPERIMENT = "mimo"
EPOCHS = {16: (4, 10, 20, 40, 80), 32: (4, 10, 20, 40)}  # width: epoch counts measured
# M = 1 and 3 only: the deep ensemble and the ResNet-18 timing do not change the trained networks
SETS = {"members": "1,3", "deep_ensemble_size": 1, "cost_backbone": "cnn", "timing_repeats": 1}
COLUMNS = (
    ("nll_m1", "NLL M=1"),
    ("nll_m3", "NLL M=3"),
    ("acc_m1", "accuracy M=1"),
    ("acc_m3", "accuracy M=3"),
    ("member_acc_m3", "member accuracy M=3"),
)


def _widths(text: str) -> tuple[int, ...]:
    """``--widths``: some of the grid's widths (``EPOCHS``), comma-separated."""
    widths = tuple(int(part) for part in text.split(",") if part.strip().isdigit())
    if not widths or len(widths) != len(text.split(",")) or set(widths) - set(EPOCHS):
        raise argparse.ArgumentTypeError(
            f"expected widths of {sorted(EPOCHS)}, comma-separated; got {text!r}"
        )
    return widths


def main(argv: list[str] | None = None) -> str:
    parser = _budget.parser(__doc__, EXPERIMENT, seeds="0,1")
    parser.add_argument(
        "--widths",
        type=_widths,
        default=tuple(EPOCHS),
        help="comma-separated backbone widths of the grid, from 16,32 (width 32 trains ~2.8x "
        "slower)",
    )
    args = parser.parse_args(argv)
    table = _budget.MarkdownTable()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for width in args.widths:
        epoch_counts = EPOCHS[width]
        curve = []
        for epochs in epoch_counts:
            # a run per seed, so that a later call with more seeds reuses the earlier ones
            result = _budget.measure(
                args,
                EXPERIMENT,
                f"width{width}-epochs{epochs}",
                {**SETS, "width": width, "epochs": epochs},
                one_run_per_seed=True,
            )
            names = ("nll_diff_m3", *(name for name, _ in COLUMNS))
            values = {name: result.values(name) for name in names}
            curve.append(values)
            table.add(
                {
                    "width": width,
                    "epochs": epochs,
                    "NLL M=3 - M=1 (seeds)": _budget.mean_and_seeds(values["nll_diff_m3"]),
                    **{label: values[name].mean() for name, label in COLUMNS},
                    "CPU min": f"{result.cpu_s / 60:.1f}",
                }
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
    axes[0].set(xlabel="epochs", ylabel="test NLL, M = 3 minus M = 1")
    axes[1].set(xlabel="epochs", ylabel="ensemble test NLL")
    _budget.log_axes(axes, sorted({e for w in args.widths for e in EPOCHS[w]}))
    _budget.save_figure(fig, args.figure, f"MIMO on {args.data}, mean over seeds {args.seeds}")
    return str(table)


if __name__ == "__main__":
    print(main())
