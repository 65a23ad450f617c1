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

import _budget
import matplotlib.pyplot as plt

EXPERIMENT = "cluster-then-label"
CLUSTERS = (10, 20, 40, 80)
TAGS = ("1pct", "2pct", "5pct", "10pct")


def main(argv: list[str] | None = None) -> str:
    args = _budget.parser(__doc__, EXPERIMENT, seeds="0,1,2").parse_args(argv)
    table = _budget.MarkdownTable()
    means = {}
    for clusters in CLUSTERS:
        result = _budget.measure(args, EXPERIMENT, f"clusters{clusters}", {"n_clusters": clusters})
        # the chosen alpha's accuracy is a summary metric (alpha chosen on the seeds' mean)
        means[clusters] = values = result.means
        for tag in TAGS:
            table.add(
                {
                    "clusters": clusters,
                    "labeled": tag.replace("pct", "%"),
                    "ClusterThenLabel (chosen alpha)": values[f"acc_ctl_best_{tag}"],
                    "alpha = 0": values[f"acc_ctl_alpha0_{tag}"],
                    "logistic regression": values[f"acc_logreg_{tag}"],
                    "k-means voted by every label": values["acc_kmeans_all_labels"],
                    "CPU min per seed": f"{result.cpu_min_per_seed:.2f}",
                }
            )
    fig, axes = plt.subplots(1, len(TAGS), figsize=(13, 3.6), sharey=True)
    for ax, tag in zip(axes, TAGS):
        for key, label, style in (
            ("acc_ctl_best", "ClusterThenLabel, chosen alpha", "-o"),
            ("acc_ctl_alpha0", "alpha = 0 (k-means + vote)", "-s"),
            ("acc_logreg", "logistic regression, labeled", "--"),
        ):
            ax.plot(
                CLUSTERS, [means[k][f"{key}_{tag}"] for k in CLUSTERS], style, ms=4, label=label
            )
        ceiling = [means[k]["acc_kmeans_all_labels"] for k in CLUSTERS]
        ax.plot(CLUSTERS, ceiling, ":", color="0.4", label="k-means voted by every label")
        ax.set(xlabel="clusters", title=f"{tag.replace('pct', '%')} labeled")
        _budget.log_axis(ax, CLUSTERS)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    title = f"{EXPERIMENT} on {args.data}, mean over seeds {args.seeds}"
    _budget.save_figure(fig, args.figure, title)
    return str(table)


if __name__ == "__main__":
    print(main())
