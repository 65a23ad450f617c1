"""Multiple instance learning: attention pooling finds the "2" in a bag of digits.

Bags of digits (``make_bags``: mean size 10, std 2, half of them positive) are positive iff they
hold a "2"; only bag labels are used for training. For 50, 100, 200 and 500 training bags the
same small CNN feature extractor is trained with four poolings: attention and gated attention
(Ilse et al. 2018, ``AttentionMIL``), and mean and max pooling of the embeddings
(``PoolingMIL``), for a fixed number of optimizer steps through ``engine.fit``. Training bags are
drawn from the digits' train split, test bags from the test split (no image is shared). With
``--data`` (an MNIST-format IDX folder such as Fashion-MNIST, or the CIFAR-10 batches) the bags
hold that data set's images and ``positive_class`` is one of its classes.

Reported per pooling and training-set size: bag accuracy and bag AUC on the test bags, and the
instance AUC of the pooling weights against the hidden instance labels, over every instance of
every test bag (the seed showed the attention of one bag only). Mean pooling gives the instances
of a bag the same weight ``1 / n``, which says nothing about which instance is a "2"; its instance
AUC (0.5 to 0.6 depending on the draw: positives make up a larger share of small positive bags)
is the floor to read the others against.

The strong simple baselines: mean and max pooling of the same network's embeddings (the claim
reads the better of the two), and what a practitioner tries first without a network: logistic
regression on the instances' pixels with each instance given its bag's label (single-instance
learning), a bag scored by its highest instance probability (``bag_auc_logreg_<bags>``, and
``instance_auc_logreg_<bags>`` of those probabilities).

Longer than the lab's 400 lines: attention MIL, both pooling baselines and the instance
logistic regression are trained on the same bags for every training-set size.

What the original project did and what was wrong in it: docs/systems/multiple-instance-learning.md.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from torch import nn

from mltricks._utils.state import preserved
from mltricks.data import Bags, collate_bags, make_bags
from mltricks.lab import engine
from mltricks.lab.baselines import logistic_regression
from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import IMAGE_DATA, SMOKE_SUBSET, SOURCES, read_images
from mltricks.lab.experiment import Baseline, Claim, Preset, RunContext, Summary
from mltricks.lab.plots import band
from mltricks.lab.training import names_learning_rates
from mltricks.models import AttentionMIL, PoolingMIL, SmallCNN

SYSTEM = "Multiple Instance Learning"
DESCRIPTION = (
    "attention MIL on digit bags: bag AUC and instance AUC of attention vs mean/max pooling"
)
DATA = f"{IMAGE_DATA} (train bags from its train split, test bags from its test split)"
DATA_FORMATS = SOURCES

Pooling = Literal["attention", "gated", "mean", "max"]
POOLINGS: tuple[Pooling, ...] = ("attention", "gated", "mean", "max")


@dataclass
class Config(DataSubset):
    train_bags: tuple[int, ...] = (50, 200)
    poolings: tuple[Pooling, ...] = POOLINGS
    test_bags: int = 200
    mean_bag_size: float = 10.0
    std_bag_size: float = 2.0
    positive_class: int = 2
    positive_fraction: float = 0.5
    width: int = 16
    hidden_dim: int = 64
    steps: int = 300
    # also score the test bags after these many steps (the budget curve, ``curve_<pooling>_<bags>``
    # in metrics.json: [step, bag AUC, instance AUC]; at the end of the epoch that reaches each)
    curve_steps: tuple[int, ...] = ()
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    figure_bags: int = 6


# with --data: every image (the cost is set by steps, not by the images read), the same for
# every seed (subset_seed 0, as the published Fashion-MNIST results were measured, README; the
# bags themselves are drawn per seed)
DATA_CONFIG = {"subset_seed": 0}


PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "train_bags": (200,),
            "test_bags": 20,
            "steps": 6,
            "width": 4,
            "hidden_dim": 8,
        },
        data_config=SMOKE_SUBSET,
    ),
    "quick": Preset(seeds=(0,)),
    # with --data: on Fashion-MNIST (4 bag counts x 4 poolings x 300 steps of 8 bags of ~10
    # images at width 8) about 7 CPU-minutes (one seed measured 132 CPU-seconds; width 16 costs
    # about twice that)
    "full": Preset(
        seeds=(0, 1, 2), config={"train_bags": (50, 100, 200, 500)}, data_config={"width": 8}
    ),
}

CLAIMS = (
    Claim(
        "attention MIL's weights point at the positive instances: with 200 training bags, the "
        "instance AUC of its attention is at least 0.1 above mean pooling's uniform weights "
        "(quick: one seed; full: mean over 3)",
        lambda s: s["instance_auc_attention_200"].mean >= s["instance_auc_mean_200"].mean + 0.1,
        ("instance_auc_attention_200", "instance_auc_mean_200"),
        presets=("quick", "full"),
    ),
    Claim(
        "with 200 training bags, attention MIL reaches a bag AUC of at least 0.9 and an instance "
        "AUC of its attention weights of at least 0.9 (all test bags)",
        lambda s: (
            s["bag_auc_attention_200"].mean >= 0.9 and s["instance_auc_attention_200"].mean >= 0.9
        ),
        ("bag_auc_attention_200", "instance_auc_attention_200"),
        min_seeds=3,
    ),
    Claim(
        "the strong simple baselines: with 200 training bags, attention MIL's bag AUC is at "
        "least the better of mean and max pooling's, and above logistic regression on the "
        "instances with their bag's label (mean over seeds)",
        lambda s: (
            s["bag_auc_attention_200"].mean
            >= max(s["bag_auc_mean_200"].mean, s["bag_auc_max_200"].mean)
            and s["bag_auc_attention_200"].mean > s["bag_auc_logreg_200"].mean
        ),
        ("bag_auc_attention_200", "bag_auc_mean_200", "bag_auc_max_200", "bag_auc_logreg_200"),
        min_seeds=3,
    ),
)
BASELINES = (
    Baseline(
        "bag_auc_attention_200",
        "bag_auc_logreg_200",
        what="attention MIL with 200 training bags",
        fix="more steps (--set steps=...)",
        preset="full",
    ),
)


def _model(cfg: Config, pooling: str, in_channels: int) -> nn.Module:
    cnn = SmallCNN(in_channels, 1, width=cfg.width)
    if pooling in ("attention", "gated"):
        return AttentionMIL(
            cnn.features, cnn.feature_dim, hidden_dim=cfg.hidden_dim, gated=pooling == "gated"
        )
    return PoolingMIL(cnn.features, cnn.feature_dim, pooling=pooling)


def _step(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    bags, mask, labels, _ = batch
    logits, _ = model(bags, mask)
    loss = F.binary_cross_entropy_with_logits(logits, labels.float())
    return loss, {"accuracy": float(((logits > 0).long() == labels).float().mean())}


def _outputs(model: nn.Module, batch: Any) -> torch.Tensor:
    """``(B, 1 + N)``: the bag logit, then the pooling weights of each (padded) instance."""
    logits, weights = model(batch[0], batch[1])
    return torch.cat([logits[:, None], weights], dim=1)


def _train_and_score(
    cfg: Config, pooling: str, train: Bags, test: Bags, seed: int
) -> tuple[dict[str, float], torch.Tensor, list[list[float]]]:
    """Train one pooling; return its test scores, its test weights and the budget curve:
    ``[step, bag AUC, instance AUC]`` after the steps of ``cfg.curve_steps`` and at the end."""
    engine.seed_everything(seed)
    model = _model(cfg, pooling, train.instances[0].shape[1])
    loader = engine.make_loader(
        train, batch_size=cfg.batch_size, shuffle=True, random_state=seed, collate_fn=collate_bags
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pending = sorted(step for step in set(cfg.curve_steps) if step < cfg.steps)
    curve: list[list[float]] = []

    def score_on_the_way(epoch: int, row: dict[str, float]) -> None:
        # at the end of the epoch that reaches a curve step (a prefix of the same training:
        # constant learning rate, and the global generator restored after the test pass)
        if pending and pending[0] <= row["step"] < cfg.steps:  # the last one is scored below
            while pending and row["step"] >= pending[0]:
                pending.pop(0)
            with preserved():
                scores, _ = _score(model, test)
            curve.append([row["step"], scores["bag_auc"], scores["instance_auc"]])

    engine.fit(
        model,
        loader,
        optimizer,
        epochs=math.ceil(cfg.steps / len(loader)),
        max_steps=cfg.steps,
        step_fn=_step,
        callbacks=[score_on_the_way],
        desc=f"{pooling} {len(train)} bags",
    )
    scores, weights = _score(model, test)
    curve.append([cfg.steps, scores["bag_auc"], scores["instance_auc"]])
    return scores, weights, curve


def _score(model: nn.Module, test: Bags) -> tuple[dict[str, float], torch.Tensor]:
    """Bag accuracy, bag AUC and instance AUC of the pooling weights on the test bags, and the
    weights ``(num_bags, longest bag)``."""
    length = int(test.sizes.max())
    test_loader = engine.make_loader(
        test, batch_size=64, collate_fn=functools.partial(collate_bags, length=length)
    )
    outputs = engine.predict(model, test_loader, fn=_outputs)
    logits, weights = outputs[:, 0], outputs[:, 1:]
    _, mask, labels, hidden = collate_bags([test[i] for i in range(len(test))], length=length)
    scores = {
        "bag_acc": float(((logits > 0).long() == labels).float().mean()),
        "bag_auc": float(roc_auc_score(labels.numpy(), logits.numpy())),
        "instance_auc": float(roc_auc_score(hidden[mask].numpy(), weights[mask].numpy())),
    }
    return scores, weights


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    train_images, train_labels, test_images, test_labels = read_images(cfg, ctx)
    bag_args: dict[str, Any] = dict(
        positive_class=cfg.positive_class,
        mean_bag_size=cfg.mean_bag_size,
        std_bag_size=cfg.std_bag_size,
        positive_fraction=cfg.positive_fraction,
    )
    # a different draw of test bags per seed, always from the held-out test images
    test = make_bags(
        test_images,
        test_labels,
        num_bags=cfg.test_bags,
        random_state=10_000 + ctx.seed,
        **bag_args,
    )
    largest = max(cfg.train_bags)
    shown = 200 if 200 in cfg.train_bags else largest
    metrics: dict[str, Any] = {}
    # the smaller training sets are the first bags of the largest draw (nested sets)
    full = make_bags(
        train_images, train_labels, num_bags=largest, random_state=ctx.seed, **bag_args
    )
    for count in cfg.train_bags:
        train = _subset(full, count)
        scores_logreg = single_instance_logreg(train, test)
        for name, value in scores_logreg.items():
            metrics[f"{name}_logreg_{count}"] = value
        for pooling in cfg.poolings:
            scores, weights, curve = _train_and_score(cfg, pooling, train, test, ctx.seed)
            for name, value in scores.items():
                metrics[f"{name}_{pooling}_{count}"] = value
            if cfg.curve_steps:
                metrics[f"curve_{pooling}_{count}"] = curve
            ctx.log(
                f"seed {ctx.seed}, {count} bags, {pooling}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            )
            if ctx.first_seed and count == shown and pooling in ("attention", "gated"):
                _attention_figure(cfg, ctx, test, weights, pooling, count)
    return metrics


def single_instance_logreg(train: Bags, test: Bags) -> dict[str, float]:
    """The baseline without a network: logistic regression (``baselines.logistic_regression``)
    on every training instance's pixels, labelled with its bag's label; a test bag's score is
    its highest instance probability.

    Returns:
        ``{"bag_auc": ..., "instance_auc": ...}`` on the test bags (instance AUC of the
        instance probabilities against the hidden instance labels).
    """
    x = torch.cat(train.instances).flatten(1).numpy()
    y = torch.cat([label.repeat(len(bag)) for bag, label in zip(train.instances, train.labels)])
    if len(np.unique(y.numpy())) < 2:  # one class of bags: nothing to learn, a constant score
        probabilities = np.zeros(sum(len(bag) for bag in test.instances))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = logistic_regression().fit(x, y.numpy())
        probabilities = model.predict_proba(torch.cat(test.instances).flatten(1).numpy())[:, 1]
    sizes = [len(bag) for bag in test.instances]
    bag_scores = [part.max() for part in np.split(probabilities, np.cumsum(sizes)[:-1])]
    hidden = torch.cat(test.instance_labels).numpy()
    return {
        "bag_auc": float(roc_auc_score(test.labels.numpy(), bag_scores)),
        "instance_auc": float(roc_auc_score(hidden, probabilities)),
    }


def _subset(bags: Bags, count: int) -> Bags:
    return Bags(
        bags.instances[:count],
        bags.labels[:count],
        bags.instance_labels[:count],
        bags.indices[:count],
    )


def _attention_figure(
    cfg: Config, ctx: RunContext, test: Bags, weights: torch.Tensor, pooling: str, count: int
) -> None:
    """The seed's figure: test bags, one row each, with the weight of every instance."""
    positive = torch.nonzero(test.labels == 1).flatten()[: (cfg.figure_bags + 1) // 2]
    negative = torch.nonzero(test.labels == 0).flatten()[: cfg.figure_bags // 2]
    rows = torch.cat([positive, negative]).tolist()
    columns = int(test.sizes[rows].max())
    height, width = test.instances[0].shape[-2:]
    gap = max(2, height // 4)
    cell_h, cell_w = height + 2 * gap, width + gap
    # one mosaic image (a subplot per instance is slow to draw)
    canvas = np.full((len(rows) * cell_h, columns * cell_w), np.nan)
    fig, ax = plt.subplots(figsize=(0.75 * columns + 1.5, 0.95 * len(rows) + 0.6))
    for r, bag_index in enumerate(rows):
        bag, hidden = test.instances[bag_index], test.instance_labels[bag_index]
        for c in range(len(bag)):
            top, left = r * cell_h + gap, c * cell_w
            canvas[top : top + height, left : left + width] = bag[c].mean(0).numpy()
            color = "C3" if hidden[c] else "k"
            ax.text(
                left + width / 2 - 0.5,
                top - 0.8,
                f"{float(weights[bag_index, c]):.2f}",
                ha="center",
                va="bottom",
                fontsize=7,
                color=color,
            )
            if hidden[c]:
                ax.add_patch(
                    plt.Rectangle(
                        (left - 0.5, top - 0.5),
                        width,
                        height,
                        fill=False,
                        edgecolor="C3",
                        linewidth=1.5,
                    )
                )
    ax.imshow(canvas, cmap="gray_r", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * cell_h + gap + height / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"bag {i} (label {int(test.labels[i])})" for i in rows], fontsize=8)
    ax.set_title(
        f"{pooling} weight of each instance ({count} training bags); red: a positive instance",
        fontsize=9,
    )
    ctx.savefig(
        fig,
        f"bags-{pooling}",
        f"seed {ctx.seed}: test bags (first rows positive) with the {pooling} weight of each "
        f"instance above it; instances of the positive class are framed in red",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    counts = np.array(cfg.train_bags)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, metric, label in zip(
        axes,
        ("bag_auc", "bag_acc", "instance_auc"),
        ("bag AUC", "bag accuracy", "instance AUC of the weights"),
    ):
        for pooling in cfg.poolings:
            estimates = [summary[f"{metric}_{pooling}_{count}"] for count in cfg.train_bags]
            (line,) = ax.plot(counts, [e.mean for e in estimates], "-o", ms=4, label=pooling)
            if len(results) > 1:
                # accuracies and AUCs live in [0, 1]; t intervals over few seeds can leave it
                band(ax, counts, estimates, clip=(0, 1), alpha=0.2, color=line.get_color())
        if metric != "bag_acc":  # the baseline scores bags, it does not threshold them
            baseline = [summary[f"{metric}_logreg_{count}"].mean for count in cfg.train_bags]
            ax.plot(counts, baseline, "k--x", lw=1, label="logistic regression (instances)")
        ax.set(xscale="log", xlabel="training bags", ylabel=label)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    ctx.savefig(
        fig,
        "auc-vs-bags",
        f"test-bag metrics against the number of training bags, mean and 95% interval over "
        f"{len(results)} seed(s); instance AUC is over every instance of every test bag; "
        "dashed: logistic regression on the instances with their bag's label",
    )
    return {}
