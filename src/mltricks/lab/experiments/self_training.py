"""Self-training: does pseudo-labeling with a validation stop beat the labeled data alone?

Digits (8x8 pixels, optionally PCA), or MNIST / Fashion-MNIST / CIFAR-10 with ``--data``: per seed,
the training split is cut into a pool and a held-out part (the same cut as the cluster-then-label
experiment, so the numbers line up); 1%, 2%, 5% and 10% of the pool keep their labels. Compared on
the test split: our ``SelfTrainingClassifier`` (validation split of the labeled samples, patience),
the same logistic regression on the labeled samples only, scikit-learn's ``SelfTrainingClassifier``
with the same base estimator and budget (``criterion="k_best"``, same ``k_best`` and ``max_iter``),
and ``LabelSpreading`` (knn kernel). The hidden pool labels only score the pseudo-labels.

The base estimator weighs classes by their inverse frequency (``class_weight="balanced"``): the
labeled samples are balanced, but the most confident pseudo-labels are not, and without it the
pseudo-labels of both self-training methods collapse onto one or two classes. The full preset also
runs both on the unweighted logistic regression, where the validation stop matters.

With ``--data``: a PCA of the pixels of a subset of the images (``data_sources.PixelFeatures``).

What the original project did and what was wrong in it: docs/systems/self-training.md.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import SelfTrainingClassifier as SklearnSelfTraining

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
from mltricks.lab.splits import check_percent_tags, percent_tag
from mltricks.semi_supervised import SelfTrainingClassifier

SYSTEM = "Self Training"
DESCRIPTION = "SelfTrainingClassifier vs its base estimator, scikit-learn's and LabelSpreading"
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES


@dataclass
class Config(LabeledShareSweep):  # the pool, shares and baselines both experiments share
    k_best: int = 50
    max_iter: int | None = None  # None: until validation stops it or every sample has a label
    patience: int = 10
    validation_fraction: float = 0.2  # of the labeled samples, inside SelfTrainingClassifier
    class_weight: Literal["balanced"] | None = "balanced"  # of the logistic regression
    # also run both self-training methods on the unweighted logistic regression, where the
    # pseudo-labels collapse and the validation stop matters
    compare_unweighted: bool = False


DATA_CONFIG = PIXEL_FEATURES_DATA
PRESETS = {
    "smoke": Preset(seeds=(0,), config={"max_iter": 3}, data_config=SMOKE_SUBSET),
    "quick": Preset(seeds=(0, 1, 2)),
    # with --data the same preset: on Fashion-MNIST (5,000 training images, all 10,000 test
    # images, PCA 50) seed 0 took 109 CPU-s on one core, so the 10 seeds cost about 18 CPU-minutes
    "full": Preset(seeds=tuple(range(10)), config={"compare_unweighted": True}),
}


CLAIMS = (
    Claim(
        "SelfTrainingClassifier beats its base estimator trained on the labeled samples only "
        "at 2% and at 5% labeled",
        lambda s: all(
            s[f"acc_self_training_{t}"].mean > s[f"acc_logreg_{t}"].mean for t in ("2pct", "5pct")
        ),
        (
            "acc_self_training_2pct",
            "acc_logreg_2pct",
            "gain_vs_base_2pct",
            "acc_self_training_5pct",
            "acc_logreg_5pct",
            "gain_vs_base_5pct",
        ),
        min_seeds=5,
    ),
    Claim(
        "SelfTrainingClassifier beats its base estimator (the logistic regression) trained on "
        "the labeled samples only at 2% labeled (mean over at least 3 seeds, the quick "
        "preset's bar)",
        lambda s: s["acc_self_training_2pct"].mean > s["acc_logreg_2pct"].mean,
        ("acc_self_training_2pct", "acc_logreg_2pct", "gain_vs_base_2pct"),
        presets=("quick", "full"),
        min_seeds=3,
    ),
    Claim(
        "our SelfTrainingClassifier is at least as accurate as scikit-learn's with the same base "
        "estimator and budget (k_best, max_iter), at every labeled fraction",
        lambda s: all(
            s[f"acc_self_training_{t}"].mean >= s[f"acc_sklearn_self_training_{t}"].mean
            for t in ("1pct", "2pct", "5pct", "10pct")
        ),
        tuple(
            f"{name}_{t}"
            for t in ("1pct", "2pct", "5pct", "10pct")
            for name in ("acc_self_training", "acc_sklearn_self_training", "diff_vs_sklearn")
        ),
        min_seeds=5,
    ),
)


def validate(cfg: Config) -> None:
    check_percent_tags("fractions", cfg.fractions)


def _round_accuracy(
    labeled_iter: np.ndarray, transduction: np.ndarray, num_rounds: int, y_true: np.ndarray
) -> list[float]:
    """Accuracy of the pseudo-labels added in each self-training round (``labeled_iter == r``)."""
    accuracy = []
    for round_ in range(1, num_rounds + 1):
        added = labeled_iter == round_
        accuracy.append(float(np.mean(transduction[added] == y_true[added])))
    return accuracy


def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    # the pool follows the seed; the held-out part of the training split is left out
    X_pool, y_pool, _, _, X_test, y_test = read_features(cfg, ctx)

    def self_train(estimator: LogisticRegression, y_semi: np.ndarray):
        ours = SelfTrainingClassifier(
            estimator,
            k_best=cfg.k_best,
            max_iter=cfg.max_iter,
            validation_fraction=cfg.validation_fraction,
            patience=cfg.patience,
            random_state=ctx.seed,
        ).fit(X_pool, y_semi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # k_best larger than what is left
            theirs = SklearnSelfTraining(
                estimator, criterion="k_best", k_best=cfg.k_best, max_iter=cfg.max_iter
            ).fit(X_pool, y_semi)
        return ours, theirs

    metrics: dict[str, Any] = {}
    for share in labeled_shares(cfg, y_pool, random_state=ctx.seed):
        tag, labeled, y_semi = share.tag, share.labeled_mask, share.y_semi
        ours, theirs = self_train(cfg.logistic_regression(cfg.class_weight), y_semi)
        if cfg.compare_unweighted:
            plain_ours, plain_theirs = self_train(cfg.logistic_regression(), y_semi)
            plain_base = cfg.logistic_regression().fit(X_pool[labeled], y_pool[labeled])
            metrics |= {
                f"unweighted_acc_self_training_{tag}": plain_ours.score(X_test, y_test),
                f"unweighted_acc_sklearn_self_training_{tag}": plain_theirs.score(X_test, y_test),
                f"unweighted_acc_logreg_{tag}": plain_base.score(X_test, y_test),
                f"unweighted_rounds_kept_{tag}": plain_ours.best_iter_,
            }
        # the base estimator on the labeled samples only is acc_logreg
        baselines = share_baselines(
            cfg, share, X_pool, X_test, y_test, class_weight=cfg.class_weight
        )
        acc_ours = ours.score(X_test, y_test)
        acc_theirs = theirs.score(X_test, y_test)
        acc_base = baselines[f"acc_logreg_{tag}"]
        pseudo = ours.labeled_iter_ > 0
        metrics |= baselines | {
            f"acc_self_training_{tag}": acc_ours,
            f"acc_sklearn_self_training_{tag}": acc_theirs,
            f"gain_vs_base_{tag}": acc_ours - acc_base,
            f"diff_vs_sklearn_{tag}": acc_ours - acc_theirs,
            f"rounds_run_{tag}": ours.n_iter_,
            f"rounds_kept_{tag}": ours.best_iter_,
            f"stopped_by_validation_{tag}": float(ours.termination_condition_ == "patience"),
            f"pseudo_labels_kept_{tag}": int(pseudo.sum()),
            f"pseudo_label_accuracy_{tag}": (
                float(np.mean(ours.transduction_[pseudo] == y_pool[pseudo]))
                if pseudo.any()
                else math.nan
            ),
            f"history_{tag}": ours.history_,
            f"sklearn_round_accuracy_{tag}": _round_accuracy(
                theirs.labeled_iter_, theirs.transduction_, theirs.n_iter_, y_pool
            ),
            # ours: its first pass, the one that chooses how many rounds to keep
            f"round_accuracy_{tag}": _round_accuracy(
                ours.first_pass_labeled_iter_, ours.first_pass_transduction_, ours.n_iter_, y_pool
            ),
        }
    return metrics


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, Any]:
    _plot_accuracy_vs_fraction(cfg, summary, ctx)
    _plot_rounds(cfg, results, ctx)
    return {}


def _plot_accuracy_vs_fraction(cfg: Config, summary: Summary, ctx) -> None:
    methods = (
        ("SelfTrainingClassifier (ours)", "acc_self_training"),
        ("scikit-learn SelfTrainingClassifier", "acc_sklearn_self_training"),
        ("LogisticRegression, labeled only", "acc_logreg"),
        ("LabelSpreading (knn)", "acc_label_spreading"),
        ("ours, unweighted base", "unweighted_acc_self_training"),
        ("scikit-learn, unweighted base", "unweighted_acc_sklearn_self_training"),
    )
    rows, styles = {}, {}
    for label, key in methods:
        names = [f"{key}_{percent_tag(f)}" for f in cfg.fractions]
        if all(name in summary for name in names):  # unweighted: full preset only
            rows[label] = [summary[n] for n in names]
            styles[label] = {"ls": "--" if key.startswith("unweighted") else "-"}
    fig, ax = accuracy_vs_labeled_figure(cfg.fractions, rows, styles)
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "accuracy-vs-labeled",
        "test accuracy against the labeled share, mean and 95% interval over seeds (dashed: "
        "the same self-training with an unweighted logistic regression, full preset)",
    )


def _per_round(rows: list[list[float]]) -> np.ndarray:
    """Mean over seeds of per-round values of unequal length (NaN where a seed had stopped)."""
    length = max((len(r) for r in rows), default=0)
    table = np.full((len(rows), length), np.nan)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a round no seed reached
        return np.nanmean(table, axis=0) if length else np.zeros(0)


def _plot_rounds(cfg: Config, results: list[dict[str, Any]], ctx) -> None:
    fig, axes = plt.subplots(
        1, len(cfg.fractions), figsize=(4 * len(cfg.fractions), 3.8), squeeze=False
    )
    for ax, fraction in zip(axes[0], cfg.fractions):
        tag = percent_tag(fraction)
        histories = [r[f"history_{tag}"][1:] for r in results]
        added = _per_round([[row["num_added"] for row in h] for h in histories])
        ours = _per_round([r[f"round_accuracy_{tag}"] for r in results])
        val = _per_round([[row["val_accuracy"] for row in r[f"history_{tag}"]] for r in results])
        theirs = _per_round([r[f"sklearn_round_accuracy_{tag}"] for r in results])
        rounds = np.arange(1, len(added) + 1)
        ax.bar(rounds, added / max(cfg.k_best, 1), color="#dde", label="added / k_best")
        ax.plot(rounds, ours, "o-", ms=3, label="pseudo-label accuracy (ours)")
        ax.plot(np.arange(1, len(theirs) + 1), theirs, "x--", ms=3, label="same, scikit-learn")
        ax.plot(np.arange(len(val)), val, "s:", ms=3, label="validation accuracy (ours)")
        ax.set(title=f"{tag} labeled", xlabel="round", ylim=(0, 1.05))
    axes[0][0].legend(fontsize=7)
    ctx.savefig(
        fig,
        "pseudo-labels-per-round",
        "per round, mean over seeds: share of k_best added, accuracy of the added pseudo-labels "
        "against the hidden labels, and validation accuracy on the held-out labeled samples "
        "(rounds of the first pass, which chooses how many rounds to keep)",
    )
