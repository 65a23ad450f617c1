"""Semi-supervised clustering: do labels pulling on the clusters beat k-means + vote?

Digits (8x8 pixels, optionally PCA), or MNIST / Fashion-MNIST / CIFAR-10 with ``--data``: per seed,
the training split is cut into a pool (labeled and unlabeled samples) and a validation part; 1%, 2%,
5% and 10% of the pool keep their labels (stratified). ``ClusterThenLabel`` runs over an alpha sweep
that includes 0 (= k-means + majority vote). Alpha is chosen per labeled fraction by mean validation
accuracy over the seeds (the smallest alpha on ties); the test split is only scored. Next to it:
scikit-learn ``KMeans`` + majority vote, ``LabelSpreading`` (knn kernel), and logistic regression on
the labeled samples.

With ``--data``: a PCA of the pixels of a subset of the images (``data_sources.PixelFeatures``).

The strong simple baseline is logistic regression on the labeled samples alone
(``acc_logreg_<share>``, the same features): what a practitioner with a few labels tries first.
ClusterThenLabel does not beat it on Fashion-MNIST, nor on the digits at 2% labeled, and the claim
against it is reported as not holding: a cluster predicts one class, so a vote over k-means
clusters is capped by how well the clusters follow the classes. ``acc_kmeans_all_labels`` measures
that cap (k-means voted by every pool label): with 10 clusters 0.55 on Fashion-MNIST and 0.76 on
the digits, below logistic regression with 2% of the labels. More clusters raise the cap without
closing the gap (``scripts/budget_cluster_then_label.py``, docs/systems/cluster-then-label.md).

What the original project did and what was wrong in it: docs/systems/cluster-then-label.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans

from mltricks.lab.data_sources import (
    IMAGE_DATA,
    PIXEL_FEATURES_DATA,
    SMOKE_SUBSET,
    SOURCES,
    read_features,
)
from mltricks.lab.experiment import Claim, Preset, RunContext, Summary
from mltricks.lab.labeled_shares import (
    LabeledShareSweep,
    accuracy_vs_labeled_figure,
    labeled_shares,
    share_baselines,
)
from mltricks.lab.plots import band, column_estimates
from mltricks.lab.splits import check_percent_tags, percent_tag
from mltricks.lab.stats import mean_interval
from mltricks.semi_supervised import ClusterThenLabel

SYSTEM = "Semi-Supervised Clustering (Cluster-Then-Label)"
DESCRIPTION = "ClusterThenLabel alpha sweep vs k-means + vote, LabelSpreading on 1-10% labels"
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES


@dataclass
class Config(LabeledShareSweep):  # the pool, shares and baselines both experiments share
    alphas: tuple[float, ...] = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    n_clusters: int = 10
    max_iter: int = 100
    figure_alpha: float = 0.1  # alpha of the objective figure


DATA_CONFIG = PIXEL_FEATURES_DATA
PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={"fractions": (0.01, 0.02), "alphas": (0.0, 0.1), "max_iter": 20},
        data_config=SMOKE_SUBSET,
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    # with --data the same preset: on Fashion-MNIST (5,000 training images, all 10,000 test
    # images, PCA 50) seed 0 took 9 CPU-s on one core, so the 10 seeds cost about 1.5 CPU-minutes
    "full": Preset(seeds=tuple(range(10))),
}


def validate(cfg: Config) -> None:
    check_percent_tags("fractions", cfg.fractions)


def _beats_alpha0(s: Any, fraction: float) -> bool:
    tag = percent_tag(fraction)
    return s[f"acc_ctl_best_{tag}"].mean > s[f"acc_ctl_alpha0_{tag}"].mean


def _beats_logreg(s: Any, fraction: float) -> bool:
    tag = percent_tag(fraction)
    return s[f"acc_ctl_best_{tag}"].mean > s[f"acc_logreg_{tag}"].mean


CLAIMS = (
    Claim(
        "ClusterThenLabel at its best alpha (chosen on validation) beats alpha=0 (k-means + "
        "majority vote) in test accuracy at 1% and at 2% labeled",
        lambda s: _beats_alpha0(s, 0.01) and _beats_alpha0(s, 0.02),
        (
            "acc_ctl_best_1pct",
            "acc_ctl_alpha0_1pct",
            "gain_best_vs_alpha0_1pct",
            "acc_ctl_best_2pct",
            "acc_ctl_alpha0_2pct",
            "gain_best_vs_alpha0_2pct",
        ),
        min_seeds=5,
    ),
    Claim(
        "ClusterThenLabel at its validation-chosen alpha beats logistic regression trained on "
        "the labeled samples alone (the same features) in test accuracy at 1% and at 2% "
        "labeled (mean over at least 3 seeds, the quick preset's bar)",
        lambda s: _beats_logreg(s, 0.01) and _beats_logreg(s, 0.02),
        (
            "acc_ctl_best_1pct",
            "acc_logreg_1pct",
            "gain_best_vs_logreg_1pct",
            "acc_ctl_best_2pct",
            "acc_logreg_2pct",
            "gain_best_vs_logreg_2pct",
            "acc_kmeans_all_labels",
        ),
        presets=("quick", "full"),
        min_seeds=3,
    ),
)


def _cluster_vote(assignment: np.ndarray, centers: np.ndarray, y_semi: np.ndarray) -> np.ndarray:
    """Majority class of each cluster's labeled members; the nearest labeled cluster otherwise."""
    votes = np.full(len(centers), -1)
    for cluster in range(len(centers)):
        members = y_semi[(assignment == cluster) & (y_semi != -1)]
        if members.size:
            votes[cluster] = int(np.bincount(members).argmax())
    labeled = np.flatnonzero(votes >= 0)
    for empty in np.flatnonzero(votes < 0):
        gaps = ((centers[labeled] - centers[empty]) ** 2).sum(axis=1)
        votes[empty] = votes[labeled[gaps.argmin()]]
    return votes


def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    # pool, validation (chooses alpha) and test features; the pool/validation cut follows the seed
    X_pool, y_pool, X_val, y_val, X_test, y_test = read_features(cfg, ctx)
    # k-means and its vote with every pool label: how well any labelling of these clusters can
    # do (the ceiling of k-means + majority vote, whatever the labeled share)
    kmeans = KMeans(cfg.n_clusters, random_state=ctx.seed).fit(X_pool)
    test_clusters = kmeans.predict(X_test)
    all_votes = _cluster_vote(kmeans.labels_, kmeans.cluster_centers_, y_pool)
    metrics: dict[str, Any] = {
        "acc_kmeans_all_labels": float(np.mean(all_votes[test_clusters] == y_test)),
    }
    histories = {}
    for share in labeled_shares(cfg, y_pool, random_state=ctx.seed):
        tag, y_semi = share.tag, share.y_semi
        val_acc, test_acc, moves = [], [], []
        for alpha in cfg.alphas:
            model = ClusterThenLabel(
                cfg.n_clusters, alpha=alpha, max_iter=cfg.max_iter, random_state=ctx.seed
            ).fit(X_pool, y_semi)
            val_acc.append(model.score(X_val, y_val))
            test_acc.append(model.score(X_test, y_test))
            moves.append(model.n_moves_)
            if alpha == cfg.figure_alpha:
                histories[share.fraction] = model.objective_history_
        votes = _cluster_vote(kmeans.labels_, kmeans.cluster_centers_, y_semi)
        metrics |= share_baselines(cfg, share, X_pool, X_test, y_test) | {
            f"acc_ctl_alpha0_{tag}": test_acc[cfg.alphas.index(0.0)] if 0.0 in cfg.alphas else None,
            f"acc_kmeans_vote_{tag}": float(np.mean(votes[test_clusters] == y_test)),
            f"ctl_val_acc_{tag}": val_acc,
            f"ctl_test_acc_{tag}": test_acc,
            f"ctl_moves_{tag}": moves,
        }
    if ctx.first_seed and histories:
        _plot_objective(cfg, histories, ctx)
    return metrics


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for fraction in cfg.fractions:
        tag = percent_tag(fraction)
        val = np.array([r[f"ctl_val_acc_{tag}"] for r in results])  # (seeds, alphas)
        test = np.array([r[f"ctl_test_acc_{tag}"] for r in results])
        best = int(np.flatnonzero(val.mean(axis=0) == val.mean(axis=0).max())[0])
        extra[f"best_alpha_{tag}"] = cfg.alphas[best]
        extra[f"acc_ctl_best_{tag}"] = mean_interval(test[:, best])
        if 0.0 in cfg.alphas:
            zero = cfg.alphas.index(0.0)
            extra[f"gain_best_vs_alpha0_{tag}"] = mean_interval(test[:, best] - test[:, zero])
        logreg = np.array([r[f"acc_logreg_{tag}"] for r in results])
        extra[f"gain_best_vs_logreg_{tag}"] = mean_interval(test[:, best] - logreg)
    _plot_accuracy_vs_fraction(cfg, summary, extra, ctx)
    _plot_accuracy_vs_alpha(cfg, results, extra, ctx)
    return extra


def _plot_objective(cfg: Config, histories: dict[float, np.ndarray], ctx: RunContext) -> None:
    fig, axes = plt.subplots(1, len(histories), figsize=(4 * len(histories), 3.6), squeeze=False)
    for ax, (fraction, history) in zip(axes[0], histories.items()):
        iterations = np.arange(1, len(history) + 1)
        # a zigzag: assignment (before), supervised moves (after), then the next assignment
        ax.plot(np.ravel([iterations, iterations + 0.5], order="F"), history.ravel(), "-", c="0.7")
        ax.plot(iterations, history[:, 0], "o", ms=4, label="before (nearest-center assignment)")
        ax.plot(iterations + 0.5, history[:, 1], "s", ms=4, label="after the supervised moves")
        shown = history[1:] if len(history) > 2 else history  # the first k-means step dwarfs all
        margin = 0.1 * (shown.max() - shown.min()) + 1e-9
        ax.set_ylim(shown.min() - margin, shown.max() + margin)
        ax.set(title=f"{percent_tag(fraction)} labeled", xlabel="iteration", ylabel="objective J")
    axes[0][0].legend(fontsize=7)
    ctx.savefig(
        fig,
        "objective",
        f"seed {ctx.seed}, alpha={cfg.figure_alpha}: objective before and after the supervised "
        "step of each iteration (the seed's figure; the first iteration is off the scale); the "
        "'after' points never rise",
    )


def _method_rows(cfg: Config, summary: Summary, extra: dict[str, Any]):
    rows = {
        "ClusterThenLabel, chosen alpha": [
            extra[f"acc_ctl_best_{percent_tag(f)}"] for f in cfg.fractions
        ]
    }
    for label, key in (
        ("ClusterThenLabel, alpha=0", "acc_ctl_alpha0"),
        ("KMeans + majority vote", "acc_kmeans_vote"),
        ("LabelSpreading (knn)", "acc_label_spreading"),
        ("LogisticRegression, labeled only", "acc_logreg"),
    ):
        names = [f"{key}_{percent_tag(f)}" for f in cfg.fractions]
        if all(name in summary for name in names):  # alpha=0 is missing when not swept
            rows[label] = [summary[name] for name in names]
    return rows


def _plot_accuracy_vs_fraction(cfg, summary: Summary, extra, ctx: RunContext) -> None:
    fig, ax = accuracy_vs_labeled_figure(cfg.fractions, _method_rows(cfg, summary, extra))
    ceiling = summary["acc_kmeans_all_labels"].mean
    ax.axhline(ceiling, color="0.4", ls=":", lw=1, label="KMeans + vote with every label")
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "accuracy-vs-labeled",
        "test accuracy against the labeled share, mean and 95% interval over seeds; dotted: "
        "k-means voted by every pool label, the most a vote over its clusters can reach",
    )


def _plot_accuracy_vs_alpha(cfg, results, extra, ctx: RunContext) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    positions = np.arange(len(cfg.alphas))
    for fraction in cfg.fractions:
        tag = percent_tag(fraction)
        estimates = column_estimates(r[f"ctl_test_acc_{tag}"] for r in results)
        mean = np.array([e.mean for e in estimates])
        (line,) = ax.plot(positions, mean, "o-", label=f"{tag} labeled")
        band(ax, positions, estimates, alpha=0.15, color=line.get_color())
        chosen = cfg.alphas.index(extra[f"best_alpha_{tag}"])
        ax.plot(positions[chosen], mean[chosen], "*", ms=14, color=line.get_color())
    ax.set_xticks(positions, [f"{a:g}" for a in cfg.alphas])
    ax.set(xlabel="alpha", ylabel="test accuracy")
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "accuracy-vs-alpha",
        "test accuracy against alpha (mean, 95% band over seeds); * marks the alpha chosen on "
        "validation",
    )
