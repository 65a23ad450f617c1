"""Monte Carlo dropout: ensembles of 1 to 50 dropout samples vs standard dropout.

For each seed (the seed's "10 runs"): a small CNN with dropout in its head is trained on the
digits (with ``--data`` an MNIST-format IDX folder such as Fashion-MNIST, or the CIFAR-10
batches). From the same trained weights, standard dropout (eval mode: one
deterministic pass, the inverted-dropout scaling already done in training) is compared with MC
ensembles of T = 1, 2, 5, 10, 20, 50 samples (nested: the first T of 50 draws) on the test set:
accuracy, negative log-likelihood and expected calibration error, with paired differences so
that the interval over seeds compares like with like.

The strong simple baseline is temperature scaling of the same standard-dropout network (one
temperature fitted on a validation share of the training images, Guo et al. 2017): what a
practitioner tries first to calibrate a network, at no extra training (a deep ensemble costs M
trainings; it is the mimo experiment's baseline). The network's own baseline is logistic
regression on the same training images (``BASELINES``).

What the original project did and what was wrong in it: docs/systems/mc-dropout.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import torch

from mltricks.ensembles import MCDropout, ensemble_metrics, mutual_information
from mltricks.lab import engine
from mltricks.lab.baselines import fit_temperature, logistic_regression_accuracy
from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import IMAGE_DATA, SMOKE_SUBSET, SOURCES, read_images
from mltricks.lab.experiment import Baseline, Claim, Preset, RunContext, Summary
from mltricks.lab.plots import band
from mltricks.lab.splits import validation_split
from mltricks.lab.stats import interval_arrays
from mltricks.lab.training import (
    BatchNormRecalibration,
    names_learning_rates,
    recalibrate_batch_norm,
)
from mltricks.models import SmallCNN

SYSTEM = "Monte Carlo Dropout"
DESCRIPTION = "MC dropout ensembles (T = 1..50) vs standard dropout from the same weights"
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES


@dataclass
class Config(DataSubset, BatchNormRecalibration):
    width: int = 16
    dropout: float = 0.1  # chosen on a validation split: the best MC validation NLL of 0.1-0.5
    epochs: int = 30  # full: 60 (the 5-minute budget of a full preset)
    batch_size: int = 64
    lr: float = 1e-3
    sample_sizes: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    num_bins: int = 15
    val_fraction: float = 0.1  # held out of training: temperature scaling's fit


# with --data (the recomputed BatchNorm statistics serve the standard and the MC passes alike):
# full on Fashion-MNIST trains 20 epochs on 4,000 images, where the network is at its best
# (scripts/budget_mc_dropout.py: temperature-scaled NLL 0.477 at 20 epochs, 0.517 at 10 and
# 0.489 at 40; past 20 it overfits, which favours MC averaging and still more temperature
# scaling); the 10 seeds, with 50 MC passes over 1,000 test images, took 8.2 CPU-minutes
# (results/fashion-mnist/mc-dropout)
DATA_CONFIG = {"max_train": 4000, "max_test": 1000}
PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "width": 8,
            "epochs": 2,
            "sample_sizes": (1, 10, 20, 50),
        },
        data_config=SMOKE_SUBSET,
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    "full": Preset(seeds=tuple(range(10)), config={"epochs": 60}, data_config={"epochs": 20}),
}

LARGE = (10, 20, 50)  # the ensemble sizes the claims are about
CLAIMS = (
    Claim(
        "MC dropout with 10, 20 and 50 samples has a lower test NLL than standard dropout with "
        "the same weights (95% interval of the paired difference below 0)",
        lambda s: all(s[f"nll_diff_mc{t}"].below(0) for t in LARGE),
        (*(f"nll_diff_mc{t}" for t in LARGE), "nll_std"),
        min_seeds=10,
    ),
    Claim(
        "MC dropout with 10, 20 and 50 samples is not less accurate than standard dropout "
        "beyond the interval (95% interval of the paired accuracy difference reaches 0 or more)",
        lambda s: not any(s[f"acc_diff_mc{t}"].below(0) for t in LARGE),
        (*(f"acc_diff_mc{t}" for t in LARGE), "acc_std"),
        min_seeds=10,
    ),
    Claim(
        "MC dropout with 50 samples has a lower test NLL than the standard-dropout network "
        "calibrated by temperature scaling (one temperature fitted on the validation share; 95% "
        "interval of the paired difference below 0)",
        lambda s: s["nll_diff_mc50_vs_ts"].below(0),
        ("nll_diff_mc50_vs_ts", "nll_mc50", "nll_ts", "nll_std", "temperature"),
        min_seeds=10,
    ),
    Claim(
        "MC dropout with 10, 20 and 50 samples is not less accurate than standard dropout "
        "beyond the interval, judged from 3 seeds on (the quick preset's; the claim above asks "
        "for 10)",
        lambda s: not any(s[f"acc_diff_mc{t}"].below(0) for t in LARGE),
        (*(f"acc_diff_mc{t}" for t in LARGE), "acc_std"),
        presets=("quick", "full"),
        min_seeds=3,
    ),
)
BASELINES = (
    Baseline(
        "acc_std",
        "acc_logreg",
        "the dropout CNN",
        "more epochs (--set epochs=...)",
        preset="full",
    ),
)


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    x_all, y_all, x_test, y_test = read_images(cfg, ctx)
    # a validation share, never trained on: temperature scaling's fit
    train, val = validation_split(y_all, cfg.val_fraction, random_state=ctx.seed)
    x_train, y_train = x_all[train], y_all[train]
    model = SmallCNN(x_train.shape[1], 10, width=cfg.width, dropout=cfg.dropout)
    train_loader = engine.make_loader(
        x_train, y_train, batch_size=cfg.batch_size, shuffle=True, random_state=ctx.seed
    )
    history = engine.fit(
        model,
        train_loader,
        torch.optim.Adam(model.parameters(), lr=cfg.lr),
        epochs=cfg.epochs,
        desc="mc-dropout",
    )
    if cfg.recalibrate_bn:
        recalibrate_batch_norm(model, x_train)
    test_loader = engine.make_loader(x_test, y_test, batch_size=500)
    model = cast(SmallCNN, engine.unwrap(model))

    # standard dropout: the eval pass of the trained weights (dropout off, no MC)
    logits = engine.predict(model, test_loader, fn=lambda m, b: m(b[0]))
    again = engine.predict(model, test_loader, fn=lambda m, b: m(b[0]))
    if not torch.equal(logits, again):
        raise RuntimeError("the standard-dropout baseline is not deterministic")
    standard = logits.softmax(-1)
    # temperature scaling: the same logits divided by one temperature fitted on validation
    val_loader = engine.make_loader(x_all[val], batch_size=500)
    temperature = fit_temperature(engine.predict(model, val_loader), y_all[val])
    scaled = (logits / temperature).softmax(-1)
    # MC dropout: max(T) samples from the same weights, (T, N, K); smaller T use the first ones
    # masks from the global generator, which the lab seeds per seed: a fixed seed here would
    # give every test batch the same mask sequence (correlated across batches with --data)
    mc = MCDropout(model, max(cfg.sample_sizes))
    samples = engine.predict(
        mc, test_loader, fn=lambda m, b: m(b[0]).softmax(-1).transpose(0, 1)
    ).transpose(0, 1)

    metrics: dict[str, Any] = {
        "train_loss": history.last.get("train_loss"),
        "temperature": temperature,
        "acc_logreg": logistic_regression_accuracy(x_train, y_train, x_test, y_test),
    }
    base = ensemble_metrics(standard[None], y_test, num_bins=cfg.num_bins)
    calibrated = ensemble_metrics(scaled[None], y_test, num_bins=cfg.num_bins)
    for name in ("accuracy", "nll", "ece", "brier"):
        metrics[f"{_short(name)}_std"] = base[name]
    for name in ("nll", "ece", "brier"):  # its accuracy is acc_std: T changes no argmax
        metrics[f"{name}_ts"] = calibrated[name]
    for t in cfg.sample_sizes:
        scores = ensemble_metrics(samples[:t], y_test, num_bins=cfg.num_bins)
        for name in ("accuracy", "nll", "ece", "brier"):
            metrics[f"{_short(name)}_mc{t}"] = scores[name]
        metrics[f"acc_diff_mc{t}"] = scores["accuracy"] - base["accuracy"]
        metrics[f"nll_diff_mc{t}"] = scores["nll"] - base["nll"]
        metrics[f"nll_diff_mc{t}_vs_ts"] = scores["nll"] - calibrated["nll"]
    # MC uncertainty where it matters: mutual information on wrong vs right predictions
    information = mutual_information(samples)
    wrong = samples.mean(0).argmax(-1) != y_test
    metrics["mi_wrong"] = float(information[wrong].mean()) if wrong.any() else float("nan")
    metrics["mi_right"] = float(information[~wrong].mean())
    return metrics


def _short(name: str) -> str:
    return "acc" if name == "accuracy" else name


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    sizes = np.array(cfg.sample_sizes)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    for ax, (key, label) in zip(
        axes, (("acc", "test accuracy"), ("nll", "test NLL"), ("ece", "test ECE"))
    ):
        mc = [summary[f"{key}_mc{t}"] for t in sizes]
        std = summary[f"{key}_std"]
        if key == "acc":  # the seed's figure: every run's curve
            for r in results:
                ax.plot(sizes, [r[f"acc_mc{t}"] for t in sizes], color="C0", alpha=0.2, lw=0.8)
        ax.plot(sizes, [e.mean for e in mc], "o-", color="C0", label="MC dropout (mean)")
        if len(results) > 1:
            band(ax, sizes, mc, color="C0", alpha=0.25)
            _, low, high = interval_arrays([std])
            ax.axhspan(low[0], high[0], color="C3", alpha=0.15)
        ax.axhline(std.mean, color="C3", ls="--", label="standard dropout")
        if key != "acc":  # temperature scaling changes no prediction, only their confidence
            ts = summary[f"{key}_ts"].mean
            ax.axhline(ts, color="C2", ls=":", label="standard, temperature-scaled")
        ax.set(xscale="log", xlabel="MC samples T", ylabel=label, title=label)
        ax.set_xticks(sizes, [str(t) for t in sizes])
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    ctx.savefig(
        fig,
        "mc-vs-standard",
        f"MC dropout ensembles vs standard dropout from the same weights over {len(results)} "
        "runs: mean with 95% interval (thin lines: accuracy of each run, the seed's figure); "
        "dotted: the standard network with temperature scaling (the calibration baseline)",
    )
    return {}
