"""MIMO classification: M subnetworks in one network, M = 1..4, vs a deep ensemble.

For each seed: a MIMO network (a small CNN backbone whose input layer takes the M member images
stacked on channels) is trained for every M on the digits (with ``--data`` the CIFAR-10 batches
or an MNIST-format IDX folder such as Fashion-MNIST) with the MIMO batches (an independent
shuffle per member and epoch), and evaluated on the test set:
ensemble and per-member accuracy, NLL, ECE, member disagreement. A deep ensemble of independently
trained M = 1 networks is scored next to it. Cost is measured on the ResNet-18 backbone (the
seed's model): parameters and inference time of MIMO for every M and of a deep ensemble of M
ResNet-18s, relative to M = 1, timed side by side in one process (medians over repeats).

The strong simple baseline is that deep ensemble of independently trained M = 1 networks: what
a practitioner tries first for an ensemble's accuracy and calibration, which MIMO promises at the
cost of one network. The network's own baseline is logistic regression on the same training
images (``BASELINES``).

What the original project did and what was wrong in it: docs/systems/mimo.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from mltricks.ensembles import MIMO, ensemble_metrics, member_accuracy, mimo_loader, mimo_loss
from mltricks.lab import engine
from mltricks.lab.baselines import logistic_regression_accuracy
from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import IMAGE_DATA, SMOKE_SUBSET, SOURCES, read_images
from mltricks.lab.experiment import Baseline, Claim, NotApplicable, Preset, RunContext, Summary
from mltricks.lab.plots import errorbar
from mltricks.lab.training import names_learning_rates
from mltricks.models import SmallCNN, small_resnet18

SYSTEM = "MIMO Classification"
DESCRIPTION = "MIMO ensembles M = 1..4: accuracy, NLL, ECE, disagreement, cost vs a deep ensemble"
DATA = IMAGE_DATA
DATA_FORMATS = SOURCES

Backbone = Literal["cnn", "resnet18"]


@dataclass
class Config(DataSubset):
    members: tuple[int, ...] = (1, 2, 3, 4)
    backbone: Backbone = "cnn"  # the trained backbone: "cnn" (SmallCNN) or "resnet18"
    width: int = 32
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3  # Adam, cosine decay to 0 over the run
    rho: float = 0.5
    batch_repetitions: int = 1
    deep_ensemble_size: int = 3
    num_bins: int = 15
    cost_backbone: Backbone = "resnet18"  # the backbone of the cost comparison (the claims')
    timing_batch: int = 64
    timing_repeats: int = 5


DATA_CONFIG = {"max_train": 3000, "max_test": 1000}  # with --data, in every preset
PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "members": (1, 3),
            "width": 8,
            "epochs": 1,
            "deep_ensemble_size": 2,
            "cost_backbone": "cnn",  # ResNet-18s are too slow to build for a smoke run
            "timing_batch": 8,
            "timing_repeats": 2,
        },
        data_config=SMOKE_SUBSET,
    ),
    "quick": Preset(
        seeds=(0, 1), config={"members": (1, 3), "epochs": 10, "deep_ensemble_size": 2}
    ),
    # 5 seeds x 6 trainings (M = 1..4 and two more M = 1 for the deep ensemble) fit the 5-minute
    # budget of a full preset at 12 epochs. With --data, 40 epochs on 3,000 images at width 16
    # (width 32 trains ~2.8x slower): scripts/budget_mimo.py measured on Fashion-MNIST that M = 3
    # trails M = 1 up to 20 epochs (NLL +0.18 at 4, +0.03 at 20) and leads from 40 (-0.14; -0.34
    # at 80, where M = 1 overfits and M = 3 still gains 0.03 NLL); the 5 seeds took 37
    # CPU-minutes (results/fashion-mnist/mimo)
    "full": Preset(
        seeds=tuple(range(5)), config={"epochs": 12}, data_config={"epochs": 40, "width": 16}
    ),
}


def _resnet18_cost(s: Summary, name: str) -> float:
    """The mean of the cost ratio ``name``, which the cost claims read on ResNet-18 only."""
    if s["cost_on_resnet18"].mean < 1:
        raise NotApplicable(
            "the costs were measured on another backbone (--set cost_backbone=...), and the "
            "claim speaks of ResNet-18"
        )
    return s[name].mean


CLAIMS = (
    Claim(
        "MIMO with M = 3 has at most 5% more parameters than M = 1 (ResNet-18 backbone; a count, "
        "the same on every seed and preset)",
        lambda s: _resnet18_cost(s, "params_ratio_m3") <= 1.05,
        ("params_ratio_m3",),
        presets=("quick", "full"),
    ),
    Claim(
        "MIMO with M = 3 takes at most 1.3x the inference time of M = 1 (ResNet-18 backbone)",
        lambda s: _resnet18_cost(s, "time_ratio_m3") <= 1.3,
        ("time_ratio_m3",),
    ),
    Claim(
        "a deep ensemble of 3 ResNet-18s takes at least 2.5x the inference time of M = 1",
        lambda s: _resnet18_cost(s, "time_ratio_de3") >= 2.5,
        ("time_ratio_de3",),
    ),
    Claim(
        "MIMO M = 3 has a lower ensemble test NLL than M = 1 (95% interval of the paired "
        "difference below 0)",
        lambda s: s["nll_diff_m3"].below(0),
        ("nll_diff_m3", "nll_m1", "nll_m3"),
        min_seeds=5,
    ),
    Claim(
        "MIMO M = 3 comes as close as a deep ensemble of three M = 1 networks: its ensemble test "
        "NLL is not above the deep ensemble's beyond the interval (95% interval of the paired "
        "difference reaches 0 or below)",
        lambda s: not s["nll_diff_m3_vs_de"].above(0),
        ("nll_diff_m3_vs_de", "nll_m3", "acc_diff_m3_vs_de"),
        min_seeds=5,
    ),
)
BASELINES = (
    Baseline(
        "acc_m1",
        "acc_logreg",
        "the M = 1 network",
        "more epochs (--set epochs=...)",
        preset="full",
    ),
)


def _mimo_step(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    inputs, targets = batch  # (M, B, C, H, W), (M, B): member m's labels in row m
    logits = model(inputs)
    accuracy = (logits.argmax(-1) == targets).float().mean()
    return mimo_loss(logits, targets), {"accuracy": float(accuracy)}


def _backbone(name: str, channels: int, width: int) -> tuple[nn.Module, int]:
    """A feature extractor and its feature size: ``"cnn"`` (SmallCNN) or ``"resnet18"``."""
    if name == "cnn":
        cnn = SmallCNN(channels, 10, width=width)
        return cnn.features, cnn.feature_dim
    if name == "resnet18":
        resnet = small_resnet18(channels, 10)
        resnet.fc = nn.Identity()
        return resnet, 512
    raise ValueError(f"backbone must be 'cnn' or 'resnet18'; got {name!r}")


def _classifier(name: str, channels: int, width: int) -> nn.Module:
    """One whole M = 1 network of the deep ensemble in the cost comparison."""
    if name == "cnn":
        return SmallCNN(channels, 10, width=width)
    return small_resnet18(channels, 10)


def _train(cfg: Config, x: torch.Tensor, y: torch.Tensor, members: int, seed: int) -> MIMO:
    backbone, feature_dim = _backbone(cfg.backbone, x.shape[1], cfg.width)
    model = MIMO(
        backbone,
        num_members=members,
        feature_dim=feature_dim,
        num_classes=10,
        in_channels=x.shape[1],
    )
    loader = mimo_loader(
        x,
        y,
        num_members=members,
        batch_size=cfg.batch_size,
        rho=cfg.rho,
        batch_repetitions=cfg.batch_repetitions,
        random_state=seed,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs * len(loader))
    engine.fit(
        model,
        loader,
        optimizer,
        epochs=cfg.epochs,
        step_fn=_mimo_step,
        scheduler=scheduler,
        desc=f"mimo M={members}",
    )
    return cast(MIMO, engine.unwrap(model))


def _probs(model: MIMO, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Member probabilities ``(M, N, K)`` on the test set (the loader's batches are (B, ...))."""
    loader = engine.make_loader(x, y, batch_size=500)
    fn = lambda m, b: m.predict(b[0]).softmax(-1).transpose(0, 1)  # noqa: E731
    return engine.predict(model, loader, fn=fn).transpose(0, 1)


def _scores(probs: torch.Tensor, y: torch.Tensor, suffix: str, num_bins: int) -> dict[str, float]:
    scores = ensemble_metrics(probs, y, num_bins=num_bins)
    keys = ("accuracy", "nll", "ece", "brier", "disagreement", "member_accuracy")
    short = {"accuracy": "acc", "member_accuracy": "member_acc"}
    return {f"{short.get(k, k)}_{suffix}": scores[k] for k in keys}


def _costs(cfg: Config, channels: int, size: int) -> dict[str, float]:
    """Parameters and inference time of MIMO (M) and deep ensembles (M) on ``cfg.cost_backbone``
    (ResNet-18 but in the smoke preset), relative to one such network; each repeat times every
    variant once, in turn, and the median is kept."""
    variants: dict[str, list[nn.Module]] = {}
    for m in sorted(set(cfg.members) | {1}):
        backbone, dim = _backbone(cfg.cost_backbone, channels, cfg.width)
        mimo = MIMO(backbone, num_members=m, feature_dim=dim, num_classes=10, in_channels=channels)
        variants[f"m{m}"] = [mimo.eval()]
        variants[f"de{m}"] = [
            _classifier(cfg.cost_backbone, channels, cfg.width).eval() for _ in range(m)
        ]
    x = torch.rand(cfg.timing_batch, channels, size, size)
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for name, models in variants.items():  # warm-up
            _forward(name, models, x)
        for _ in range(cfg.timing_repeats):
            for name, models in variants.items():
                started = time.perf_counter()
                _forward(name, models, x)
                times[name].append(time.perf_counter() - started)
    params = {
        name: sum(p.numel() for m in ms for p in m.parameters()) for name, ms in variants.items()
    }
    median = {name: float(np.median(t)) for name, t in times.items()}
    out = {"params_m1": float(params["m1"]), "seconds_m1": median["m1"]}
    out["cost_on_resnet18"] = float(cfg.cost_backbone == "resnet18")  # the claims' backbone
    for name in variants:
        out[f"params_ratio_{name}"] = params[name] / params["m1"]
        out[f"time_ratio_{name}"] = median[name] / median["m1"]
    return out


def _forward(name: str, models: list[nn.Module], x: torch.Tensor) -> None:
    if isinstance(models[0], MIMO):
        models[0].predict(x)
    else:
        for model in models:
            model(x)


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = read_images(cfg, ctx)
    metrics: dict[str, Any] = {}
    single: list[torch.Tensor] = []  # probabilities of M = 1 networks, for the deep ensemble
    for members in sorted(set(cfg.members) | {1}):
        model = _train(cfg, x_train, y_train, members, ctx.seed)
        probs = _probs(model, x_test, y_test)
        if members == 1:
            single.append(probs[0])
        if members in cfg.members:
            metrics.update(_scores(probs, y_test, f"m{members}", cfg.num_bins))
            metrics[f"member_accs_m{members}"] = member_accuracy(probs, y_test).tolist()
    for member in range(1, cfg.deep_ensemble_size):  # more independently trained M = 1 networks
        seed = ctx.seed * 1000 + member  # new initial weights and batch order
        engine.seed_everything(seed)
        single.append(_probs(_train(cfg, x_train, y_train, 1, seed), x_test, y_test)[0])
    deep = f"de{cfg.deep_ensemble_size}"
    metrics.update(_scores(torch.stack(single), y_test, deep, cfg.num_bins))
    for members in (m for m in cfg.members if m != 1):
        for key in ("nll", "acc"):
            metrics[f"{key}_diff_m{members}"] = metrics[f"{key}_m{members}"] - metrics[f"{key}_m1"]
            metrics[f"{key}_diff_m{members}_vs_de"] = (
                metrics[f"{key}_m{members}"] - metrics[f"{key}_{deep}"]
            )
    metrics["acc_logreg"] = logistic_regression_accuracy(x_train, y_train, x_test, y_test)
    metrics.update(_costs(cfg, x_train.shape[1], x_train.shape[-1]))
    return metrics


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    members = np.array(sorted(cfg.members))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), layout="constrained")
    panels = (
        ("acc", "test accuracy"),
        ("nll", "test NLL"),
        ("ece", "test ECE"),
        ("disagreement", "member disagreement"),
    )
    de = cfg.deep_ensemble_size
    for ax, (key, label) in zip(axes, panels):
        estimates = [summary[f"{key}_m{m}"] for m in members]
        errorbar(ax, members, estimates, fmt="o-", capsize=3, label="MIMO ensemble")
        if key == "acc":
            member = [summary[f"member_acc_m{m}"] for m in members]
            errorbar(ax, members, member, fmt="s--", capsize=3, label="MIMO members (mean)")
        deep = summary[f"{key}_de{de}"]
        errorbar(ax, [de], [deep], fmt="D", color="C3", capsize=3, label=f"deep ensemble of {de}")
        ax.set(xlabel="members M", ylabel=label, title=label, xticks=members)
    axes[0].legend(fontsize=8)
    ctx.savefig(
        fig,
        "quality-vs-members",
        "MIMO ensemble quality by M (mean and 95% interval "
        "over seeds), with a deep ensemble of independently trained networks",
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, key, label in (
        (axes[0], "params_ratio", "parameters"),
        (axes[1], "time_ratio", "inference time"),
    ):
        for prefix, name in (("m", "MIMO"), ("de", "deep ensemble")):
            estimates = [summary[f"{key}_{prefix}{m}"] for m in members]
            errorbar(ax, members, estimates, fmt="o-", capsize=3, label=name)
        ax.set(
            xlabel="members M",
            ylabel=f"{label} / one ResNet-18",
            title=f"{label} (ResNet-18)",
            xticks=members,
        )
        ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "cost-vs-members",
        "cost of M members relative to one ResNet-18: MIMO (one "
        "network, wider input layer and head) vs a deep ensemble of M networks",
    )
    return {}
