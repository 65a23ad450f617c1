"""Consistency regularization: ``lambda * ||f(x) - f(x_augmented)||^2`` on unlabeled
images, with lambda chosen on validation data: the digits, or MNIST / Fashion-MNIST / CIFAR-10 with
``--data``.

For each seed: a labeled share of the training split, of which ``val_fraction`` (per class) is held
out as the validation split; the rest of the training split is unlabeled. One model per lambda in
``lambdas`` is trained from the same initial weights on the same labeled batches through
``engine.fit``: cross-entropy on the labeled samples plus the ramped-up consistency loss between
each unlabeled image (the target) and an augmented copy. The lambda with the best validation
accuracy (ties: lower validation NLL) is the seed's choice; the test split is only read to report.
The labeled-share sweep trains lambda = 0 and the seed's chosen lambda at other labeled shares.
Intervals are 95% over seeds.

With ``--data``, ``max_train`` training images (1,437 by default, the digits' number) are drawn from
the folder's training split, so that a labeled share means the same label budget as on the digits:
0.07 is about 100 labels (the seed's 100 labeled MNIST images), validation included.

What the original project did and what was wrong in it: docs/systems/consistency-regularization.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from mltricks.lab.data_sources import IMAGE_DATA, SOURCES
from mltricks.lab.experiment import Baseline, Claim, Preset, RunContext, Summary
from mltricks.lab.plots import band, column_estimates, errorbar
from mltricks.lab.semi_supervised import (
    FULL_BUDGET,
    ImageSplit,
    SemiSupervisedTraining,
    choose_on_validation,
    curves,
    diagnostics_figure,
    run_split,
    train_from,
)
from mltricks.lab.stats import interval_arrays
from mltricks.lab.training import names_learning_rates

SYSTEM = "Consistency Regularization"
DESCRIPTION = (
    "consistency loss weight lambda chosen on validation, vs lambda = 0, over label shares"
)
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES


@dataclass
class Config(SemiSupervisedTraining):  # the network, batches and budget of both experiments
    labeled_share: float = 0.07  # about 10 labeled digits per class, validation included
    val_fraction: float = 0.3  # of each class's labeled samples
    lambdas: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
    sweep_shares: tuple[float, ...] = (0.035, 0.14)  # besides labeled_share
    detach_target: bool = False
    epochs: int = 8


# with --data: 1,437 training images (the digits' number, a subset per seed) keep labeled_share's
# label budget as on the digits (0.07: 100 labels, 30 of them for validation); all test images.
# Steps, not epochs (an epoch of 70 labels is a few steps); width 32, the CNN that beats
# logistic regression on 100 Fashion-MNIST labels; all 1,337 other images unlabeled, a ramp of
# about 250 steps (6 passes of 42)
DATA_CONFIG = {
    "max_train": 1437,
    "width": 32,
    "num_unlabeled": None,
    "rampup_epochs": 6,
    "steps": 1000,
}
PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "labeled_share": 0.05,
            "lambdas": (0.0, 1.0),
            "sweep_shares": (0.1,),
            "num_unlabeled": 96,
            "epochs": 1,
            "width": 8,
        },
        data_config={"max_test": 500, "width": 8, "num_unlabeled": 96, "steps": None},
    ),
    # the full budget with 3 lambdas on 2 seeds: at the defaults' 80 steps the networks stayed
    # below logistic regression on the same labels (digits 0.51-0.76 against 0.84-0.86)
    "quick": Preset(
        seeds=(0, 1),
        config={**FULL_BUDGET, "lambdas": (0.0, 1.0, 10.0), "sweep_shares": ()},
        data_config={"steps": 500},
    ),
    # with --data (DATA_CONFIG: 100 labels of 1,437 images, the 1,337 others unlabeled, 1,000
    # steps at width 32, all 10,000 test images) the 5 seeds took 76 CPU-minutes on Fashion-MNIST
    # (8 to 10 trainings a seed; results/fashion-mnist/consistency-regularization)
    "full": Preset(seeds=tuple(range(5)), config={**FULL_BUDGET, "sweep_shares": (0.035, 0.14)}),
}

CLAIMS = (
    Claim(
        "validation chooses a lambda > 0 on most seeds, and the validation-chosen lambda beats "
        "lambda = 0 on test accuracy (mean over seeds)",
        lambda s: (
            s["chosen_lambda_positive"].mean > 0.5
            and s["test_accuracy_chosen"].mean > s["test_accuracy_lambda_0"].mean
        ),
        ("test_accuracy_chosen", "test_accuracy_lambda_0", "chosen_lambda_positive"),
        min_seeds=5,
    ),
    Claim(
        "the validation-chosen lambda beats lambda = 0 by a paired test-accuracy gain (same "
        "seed, initial weights and batches) whose 95% interval over seeds lies above 0",
        lambda s: s["accuracy_gain_chosen"].above(0.0),
        ("accuracy_gain_chosen",),
        min_seeds=5,
    ),
    Claim(
        "the validation-chosen lambda beats logistic regression trained on the same labeled "
        "images (validation ones included) in test accuracy (mean over at least 2 seeds, the "
        "quick preset's bar)",
        lambda s: s["test_accuracy_chosen"].mean > s["test_accuracy_logreg"].mean,
        (
            "test_accuracy_chosen",
            "test_accuracy_lambda_0",
            "test_accuracy_logreg",
            "gain_vs_logreg_chosen",
        ),
        presets=("quick", "full"),
        min_seeds=2,
    ),
)
BASELINES = (
    Baseline(
        "test_accuracy_chosen",
        "test_accuracy_logreg",
        "the CNN with the validation-chosen consistency weight",
        "more steps (--set steps=2000)",
        preset="full",
    ),
    Baseline(
        "test_accuracy_lambda_0",
        "test_accuracy_logreg",
        "the same CNN trained on the labeled images alone (lambda = 0)",
        "more steps (--set steps=2000)",
        preset="full",
    ),
)


def _train(
    cfg: Config, data: ImageSplit, lam: float, seed: int, initial: dict[str, Any]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Train one model with consistency weight ``lam``; validation and test metrics, curves."""
    model, history, _ = train_from(
        cfg,
        data,
        initial,
        random_state=seed,  # the same batch order and random state for every lambda
        desc=f"lambda {lam:g}",
        consistency=lam,
        num_views=1,
        detach_target=cfg.detach_target,
    )
    val, test = data.evaluate(model, "val"), data.evaluate(model, "test")
    scores = {
        "val_accuracy": val["accuracy"],
        "val_nll": val["loss"],
        "test_accuracy": test["accuracy"],
        "test_nll": test["loss"],
    }
    return scores, curves(history)


def validate(cfg: Config) -> None:
    if 0.0 not in cfg.lambdas:
        shown = ",".join(f"{lam:g}" for lam in cfg.lambdas)
        raise ValueError(f"--set lambdas={shown}: must include 0 (the baseline)")


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    # the split draws only from its own seeded generators: the initial weights do not depend on
    # whether it is made first
    data = _split(cfg, ctx, cfg.labeled_share)
    initial = cfg.network(data.labeled_x.shape[1]).state_dict()
    scores, per_lambda_curves = [], {}
    for lam in cfg.lambdas:
        result, history = _train(cfg, data, lam, ctx.seed, initial)
        scores.append(result)
        per_lambda_curves[f"lambda {lam:g}"] = history
        ctx.log(
            f"seed {ctx.seed} lambda {lam:g}: val accuracy {result['val_accuracy']:.4f} "
            f"(NLL {result['val_nll']:.4f}), test accuracy {result['test_accuracy']:.4f}"
        )
    best = choose_on_validation(scores)  # validation accuracy, ties by validation NLL
    chosen = cfg.lambdas[best]
    baseline = scores[cfg.lambdas.index(0.0)]
    logreg = data.logistic_regression_accuracy()  # the practitioner's first try
    metrics: dict[str, Any] = {
        "num_labeled_train": len(data.labeled_y),
        "num_validation": len(data.val_y),
        "num_unlabeled": len(data.unlabeled_x),
        "chosen_lambda": chosen,
        "chosen_lambda_positive": float(chosen > 0),
        "test_accuracy_chosen": scores[best]["test_accuracy"],
        "test_nll_chosen": scores[best]["test_nll"],
        "accuracy_gain_chosen": scores[best]["test_accuracy"] - baseline["test_accuracy"],
        "test_accuracy_logreg": logreg,
        "gain_vs_logreg_chosen": scores[best]["test_accuracy"] - logreg,
        "gain_vs_logreg_lambda_0": baseline["test_accuracy"] - logreg,
        "lambdas": list(cfg.lambdas),
        "per_lambda": scores,
        "curves": per_lambda_curves,
    }
    for lam, result in zip(cfg.lambdas, scores):
        for key in ("val_accuracy", "test_accuracy", "test_nll"):
            metrics[f"{key}_lambda_{lam:g}"] = result[key]
    ctx.log(f"seed {ctx.seed}: chosen lambda {chosen:g} on validation")
    metrics["sweep"] = _labeled_share_sweep(
        cfg, ctx, initial, chosen, baseline, scores[best], logreg
    )
    for row in metrics["sweep"]:
        metrics[f"accuracy_gain_share_{row['share']:g}"] = row["gain"]
    if ctx.first_seed:
        fig = diagnostics_figure(per_lambda_curves, f"seed {ctx.seed}: per-epoch diagnostics")
        ctx.savefig(
            fig,
            "diagnostics",
            f"seed {ctx.seed}: supervised and unsupervised loss, prediction entropy and the "
            "most-predicted class's share on the unlabeled data, per epoch and lambda",
        )
    return metrics


def _split(cfg: Config, ctx: RunContext, share: float) -> ImageSplit:
    """The seed's labeled / validation / unlabeled / test split at a labeled share."""
    return run_split(cfg, ctx, "labeled_share", share, val_fraction=cfg.val_fraction)


def _labeled_share_sweep(
    cfg: Config,
    ctx: RunContext,
    initial: dict[str, Any],
    chosen: float,
    baseline: dict[str, float],
    picked: dict[str, float],
    logreg: float,
) -> list[dict[str, Any]]:
    """lambda = 0 against this seed's chosen lambda, and logistic regression on the labeled
    images, at every labeled share; the scores at ``cfg.labeled_share`` (``baseline``,
    ``picked`` and ``logreg``) are reused, the others trained."""
    sweep = []
    for share in sorted({*cfg.sweep_shares, cfg.labeled_share}):
        if share == cfg.labeled_share:
            zero, chosen_scores, share_logreg = baseline, picked, logreg
        else:
            split = _split(cfg, ctx, share)
            zero, _ = _train(cfg, split, 0.0, ctx.seed, initial)
            chosen_scores = (
                zero if chosen == 0 else _train(cfg, split, chosen, ctx.seed, initial)[0]
            )
            share_logreg = split.logistic_regression_accuracy()
        gain = chosen_scores["test_accuracy"] - zero["test_accuracy"]
        sweep.append(
            {
                "share": share,
                "lambda_0": zero,
                "chosen": chosen_scores,
                "gain": gain,
                "logreg": share_logreg,
            }
        )
    return sweep


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, Any]:
    _vary_lambda_figure(cfg, summary, results, ctx)
    _labeled_share_figure(results, ctx)
    return {}


def _vary_lambda_figure(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> None:
    lambdas = list(cfg.lambdas)
    positions = np.arange(len(lambdas))
    fig, (ax, ax_pick) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    for key, label, color in (
        ("test_accuracy", "test", "C0"),
        ("val_accuracy", "validation (chooses lambda)", "C1"),
    ):
        estimates = [summary[f"{key}_lambda_{lam:g}"] for lam in lambdas]
        means, _, _ = interval_arrays(estimates)
        ax.plot(positions, means, "-o", color=color, label=label)
        band(ax, positions, estimates, color=color, alpha=0.2)
    ax.set(ylabel="accuracy", title=f"vary lambda: mean and 95% interval over {len(results)} seeds")
    ax.legend(fontsize=8)
    picks = [lambdas.index(r["chosen_lambda"]) for r in results]
    ax_pick.bar(positions, np.bincount(picks, minlength=len(lambdas)), color="C2")
    ax_pick.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_pick.set(ylabel="seeds", title="lambda chosen on validation")
    for panel in (ax, ax_pick):  # both panels: one bar or point per lambda
        panel.set(xticks=positions, xticklabels=[f"{lam:g}" for lam in lambdas], xlabel="lambda")
    fig.tight_layout()
    ctx.savefig(
        fig,
        "vary-lambda",
        "the seed's vary-lambda figure: test and validation accuracy per consistency weight "
        "(band: 95% interval over seeds), and how often each lambda was chosen on validation",
    )


def _labeled_share_figure(results: list[dict[str, Any]], ctx: RunContext) -> None:
    # the sweep's scores are per seed lists (not in the summary): intervals over their columns
    shares = [row["share"] for row in results[0]["sweep"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, color in (("lambda_0", "lambda = 0", "C7"), ("chosen", "chosen lambda", "C0")):
        estimates = column_estimates(
            [row[key]["test_accuracy"] for row in r["sweep"]] for r in results
        )
        errorbar(ax, shares, estimates, fmt="-o", capsize=3, color=color, label=label)
    logreg = column_estimates([row["logreg"] for row in r["sweep"]] for r in results)
    errorbar(ax, shares, logreg, fmt="--s", capsize=3, color="C3", label="logistic regression")
    ax.set(
        xscale="log",
        xticks=shares,
        xticklabels=[f"{s:g}" for s in shares],
        xlabel="labeled share of the training split (validation included)",
        ylabel="test accuracy",
        title="labeled-share sweep",
    )
    ax.minorticks_off()
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.savefig(
        fig,
        "labeled-share-sweep",
        "test accuracy of lambda = 0, of each seed's validation-chosen lambda and of logistic "
        "regression on the same labeled images over labeled shares (mean and 95% interval over "
        "seeds)",
    )
