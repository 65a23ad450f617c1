"""Saliency, SmoothGrad and guided backprop ("cam"): weak boxes, masking and deletion.

For each seed: generated scenes with one digit object (and unlabeled distractor shapes) on a dark
canvas; a small CNN learns the digit from the image label alone. Four maps explain its decision
on held-out scenes: Saliency (absolute input gradient), SmoothGrad(Saliency), GuidedBackprop and
SmoothGrad(GuidedBackprop). Each map gives a weak box (the pixels above a quantile of the map,
the quantile chosen per method on validation scenes), scored by IoU with the object's true box
(the seed's benchmark figure). Masking the object from its centre outwards traces the object's
class score and the runner-up class's score (the seed's masking figures); deleting each map's
most relevant pixels first is scored against a random order (deletion AUC, lower is better).

The strong simple baselines for the boxes, chosen the same way (quantile on validation scenes):
a uniformly random attribution map, and the box a practitioner gets without any explanation, the
training objects' mean box size at the canvas centre; a map is worth computing for localisation
only if its box beats both. For deletion the baseline is the random order above.

No ``--data``: the weak-box IoU and the masking curves need each test image's object box, which
the image-classification sets the lab reads (MNIST, Fashion-MNIST, CIFAR-10) do not have, and
the detection sets (Pascal VOC, COCO) hold several labeled objects per image where the classifier
here learns one label per image. The generated scenes give both: one labeled object with its
true box among unlabeled distractors.

Longer than the lab's 400 lines: three explainers, the weak boxes, the masking and deletion
curves and the two box baselines are computed on the same trained network and test scenes.

What the original project did and what was wrong in it: docs/systems/saliency.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn
from torchvision.ops import box_iou

from mltricks.data import make_scenes
from mltricks.explain import (
    GuidedBackprop,
    Saliency,
    SmoothGrad,
    box_from_attribution,
    deletion_curve,
    masking_curve,
)
from mltricks.lab import engine
from mltricks.lab.experiment import Claim, Preset, RunContext, Summary
from mltricks.lab.plots import interval_errors
from mltricks.lab.training import names_learning_rates

SYSTEM = "CAM (+ SmoothGrad + Guided)"
DESCRIPTION = (
    "saliency maps of a scene classifier: weak-box IoU, masking curves, deletion vs random"
)
DATA = None  # needs one true object box per image: see the module docstring
DATA_FORMATS: tuple[str, ...] = ()

METHODS = ("saliency", "smoothgrad_saliency", "guided_backprop", "smoothgrad_guided_backprop")
LABELS = {
    "saliency": "Saliency",
    "smoothgrad_saliency": "SmoothGrad(Saliency)",
    "guided_backprop": "GuidedBackprop",
    "smoothgrad_guided_backprop": "SmoothGrad(GuidedBackprop)",
}


@dataclass
class Config:
    canvas_size: int = 32
    object_size: tuple[int, int] = (12, 16)
    num_distractors: tuple[int, int] = (0, 2)
    num_train: int = 1000
    num_val: int = 60
    num_test: int = 80
    width: int = 16
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    num_samples: int = 20
    noise: float = 0.15
    explain_batch_size: int = 1000
    quantiles: tuple[float, ...] = (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
    masking_steps: int = 10
    deletion_steps: int = 16
    num_examples: int = 4


PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "num_train": 200,
            "num_val": 16,
            "num_test": 16,
            "epochs": 2,
            "num_samples": 4,
            "quantiles": (0.9, 0.95),
            "masking_steps": 4,
            "deletion_steps": 4,
            "num_examples": 2,
        },
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    "full": Preset(
        seeds=(0, 1, 2),
        config={
            "num_train": 1500,
            "num_val": 80,
            "num_test": 120,
            "epochs": 10,
            "num_samples": 25,
        },
    ),
}

# quick trains on fewer scenes for fewer epochs (1,000 and 8 against 1,500 and 10) and averages
# fewer noisy copies (20 against 25), on the same 3 seeds
QUICK_AND_FULL = ("quick", "full")
CLAIMS = (
    Claim(
        "SmoothGrad(Saliency) gives weak boxes with a higher mean IoU than Saliency (mean over "
        "3 seeds, quick and full)",
        lambda s: s["iou_smoothgrad_saliency"].mean > s["iou_saliency"].mean,
        ("iou_smoothgrad_saliency", "iou_saliency", "iou_guided_backprop"),
        presets=QUICK_AND_FULL,
        min_seeds=3,
    ),
    Claim(
        "masking the object from its centre outwards lowers its class probability "
        "monotonically on average (the mean curve over all test scenes of all 3 seeds never "
        "rises; quick and full)",
        lambda s: s["masking_monotone_mean_curve"].mean == 1.0,
        (
            "masking_monotone_mean_curve",
            "masking_monotone",
            "masking_prob_drop",
            "masking_monotone_logit",
        ),
        presets=QUICK_AND_FULL,
        min_seeds=3,
    ),
    Claim(
        "every method's deletion AUC is below the random-order baseline (mean over 3 seeds, "
        "quick and full)",
        lambda s: all(s[f"deletion_auc_{m}"].mean < s["deletion_auc_random"].mean for m in METHODS),
        (*(f"deletion_auc_{m}" for m in METHODS), "deletion_auc_random"),
        presets=QUICK_AND_FULL,
        min_seeds=3,
    ),
    Claim(
        "every method's weak box has a higher mean IoU with the true box than both box "
        "baselines: the training objects' mean box size at the canvas centre, and the box of a "
        "random attribution map (mean over 3 seeds, quick and full)",
        lambda s: all(
            s[f"iou_{m}"].mean > max(s["iou_centre_box"].mean, s["iou_random_map"].mean)
            for m in METHODS
        ),
        (*(f"iou_{m}" for m in METHODS), "iou_centre_box", "iou_random_map"),
        presets=QUICK_AND_FULL,
        min_seeds=3,
    ),
)


def _scenes(cfg: Config, count: int, source: str, seed: int) -> tuple[torch.Tensor, ...]:
    scenes = make_scenes(
        count,
        canvas_size=cfg.canvas_size,
        num_objects=1,
        num_distractors=cfg.num_distractors,
        object_size=cfg.object_size,
        source=source,
        random_state=seed,
    )
    digits = torch.stack([labels[0] - 1 for labels in scenes.labels])  # labels start at 1
    boxes = torch.stack([boxes[0] for boxes in scenes.boxes])
    return scenes.images, digits, boxes


def _classifier(width: int) -> nn.Module:
    """Four conv blocks (three halve the size), global average pooling, a linear head.

    ``SmallCNN`` sees about 10 pixels per output position, less than a digit here (12 to 16
    pixels), so its pooled features cannot tell the digits apart on a canvas; three poolings give
    every position a view of the whole object.
    """

    def block(cin: int, cout: int, pool: bool = True) -> list[nn.Module]:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        return layers + ([nn.MaxPool2d(2)] if pool else [])

    return nn.Sequential(
        *block(1, width),
        *block(width, 2 * width),
        *block(2 * width, 4 * width),
        *block(4 * width, 4 * width, pool=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, 10),
    )


def _explainers(cfg: Config, model: torch.nn.Module, seed: int) -> dict[str, Any]:
    def smooth(explainer: Any) -> SmoothGrad:
        return SmoothGrad(
            explainer,
            num_samples=cfg.num_samples,
            noise=cfg.noise,
            batch_size=cfg.explain_batch_size,
            random_state=seed,
        )

    return {
        "saliency": Saliency(model),
        "smoothgrad_saliency": smooth(Saliency(model)),
        "guided_backprop": GuidedBackprop(model),
        "smoothgrad_guided_backprop": smooth(GuidedBackprop(model)),
    }


def _ious(maps: torch.Tensor, boxes: torch.Tensor, quantile: float) -> torch.Tensor:
    weak = box_from_attribution(maps, quantile=quantile)
    return box_iou(weak, boxes.to(weak.device)).diagonal()


def _weak_box_iou(
    cfg: Config,
    val_maps: torch.Tensor,
    val_boxes: torch.Tensor,
    test_maps: torch.Tensor,
    test_boxes: torch.Tensor,
) -> tuple[float, float]:
    """The quantile with the best mean IoU on validation scenes (never on test scenes), and the
    mean test IoU of the weak boxes at that quantile."""
    val_iou = [float(_ious(val_maps, val_boxes, q).mean()) for q in cfg.quantiles]
    quantile = cfg.quantiles[int(np.argmax(val_iou))]
    return quantile, float(_ious(test_maps, test_boxes, quantile).mean())


def centre_box(train_boxes: torch.Tensor, canvas_size: int) -> torch.Tensor:
    """The box guessed without looking at the image: the mean width and height of the training
    boxes ``(N, 4)`` (``x1, y1, x2, y2``), centred on the ``canvas_size`` square. Returns
    ``(4,)``."""
    size = (train_boxes[:, 2:] - train_boxes[:, :2]).mean(0)  # (width, height)
    corner = (canvas_size - size) / 2
    return torch.cat([corner, corner + size])


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    # train, validation and test scenes: different seeds, test digits from the held-out split
    x_train, y_train, box_train = _scenes(cfg, cfg.num_train, "train", 3 * ctx.seed)
    x_val, y_val, box_val = _scenes(cfg, cfg.num_val, "train", 3 * ctx.seed + 1)
    x_test, y_test, box_test = _scenes(cfg, cfg.num_test, "test", 3 * ctx.seed + 2)
    model = _classifier(cfg.width)
    history = engine.fit(
        model,
        engine.make_loader(
            x_train, y_train, batch_size=cfg.batch_size, shuffle=True, random_state=ctx.seed
        ),
        torch.optim.Adam(model.parameters(), lr=cfg.lr),
        epochs=cfg.epochs,
        val_loader=engine.make_loader(x_val, y_val, batch_size=256),
        desc="scene classifier",
    )
    model.eval().to(ctx.device)
    test_accuracy = engine.evaluate(model, engine.make_loader(x_test, y_test, batch_size=256))
    x_val, y_val = x_val.to(ctx.device), y_val.to(ctx.device)
    x_test, y_test = x_test.to(ctx.device), y_test.to(ctx.device)

    metrics: dict[str, Any] = {
        "val_accuracy": history.last.get("val_accuracy", float("nan")),
        "test_accuracy": test_accuracy["accuracy"],
    }
    explainers = _explainers(cfg, model, ctx.seed)
    test_maps = {}
    for name, explainer in explainers.items():
        maps = explainer.attribute(x_test, y_test)
        test_maps[name] = maps
        metrics[f"quantile_{name}"], metrics[f"iou_{name}"] = _weak_box_iou(
            cfg, explainer.attribute(x_val, y_val), box_val, maps, box_test
        )
        curve = deletion_curve(
            model, x_test, y_test, maps, steps=cfg.deletion_steps, random_state=ctx.seed
        )
        metrics[f"deletion_auc_{name}"] = float(curve.auc.mean())
        metrics[f"deletion_curve_{name}"] = curve.scores.mean(0).tolist()
        # the same seed gives every method the same random order: one baseline
        metrics["deletion_auc_random"] = float(curve.random_auc.mean())
        metrics["deletion_curve_random"] = curve.random_scores.mean(0).tolist()

    # the baselines' boxes: a random map, chosen like the methods', and the centre box
    generator = torch.Generator().manual_seed(ctx.seed)
    random_maps = [torch.rand(x.shape, generator=generator).to(x.device) for x in (x_val, x_test)]
    metrics["quantile_random_map"], metrics["iou_random_map"] = _weak_box_iou(
        cfg, random_maps[0], box_val, random_maps[1], box_test
    )
    guess = centre_box(box_train, cfg.canvas_size).expand(len(box_test), 4)
    metrics["iou_centre_box"] = float(box_iou(guess, box_test.cpu()).diagonal().mean())
    metrics |= _masking_metrics(cfg, model, x_test, y_test, box_test)
    if ctx.first_seed:
        _maps_figure(cfg, ctx, x_test, box_test, test_maps, metrics)
    return metrics


def _masking_metrics(
    cfg: Config,
    model: nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    box_test: torch.Tensor,
) -> dict[str, Any]:
    """Masking the object from its centre outwards: its class score and the runner-up class's
    score, as probabilities (the claim: relative to the other classes) and as logits (the
    seed's figure), mean curves over the test scenes."""
    with torch.no_grad():
        logits = model(x_test)
    runner_up = logits.scatter(1, y_test[:, None], -torch.inf).argmax(1)
    curves = {}
    for who, classes in (("own", y_test), ("other", runner_up)):
        for output, short in (("probs", "prob"), ("logits", "logit")):
            masked = masking_curve(
                model, x_test, classes, box_test, steps=cfg.masking_steps, output=output
            )
            curves[f"{who}_{short}"] = masked.scores.mean(0)
    return {
        "masking_monotone": bool((curves["own_prob"].diff() <= 0).all()),
        "masking_monotone_logit": bool((curves["own_logit"].diff() <= 0).all()),
        "masking_prob_drop": float(curves["own_prob"][0] - curves["own_prob"][-1]),
        "masking_other_prob_rise": float(curves["other_prob"][-1] - curves["other_prob"][0]),
        **{f"masking_{name}": curve.tolist() for name, curve in curves.items()},
    }


def _maps_figure(
    cfg: Config,
    ctx: RunContext,
    x: torch.Tensor,
    boxes: torch.Tensor,
    maps: dict[str, torch.Tensor],
    metrics: dict[str, Any],
) -> None:
    count = min(cfg.num_examples, len(x))
    fig, axes = plt.subplots(count, 1 + len(METHODS), figsize=(12, 2.6 * count), squeeze=False)

    def draw(ax: Any, box: Any, color: str) -> None:
        x1, y1, x2, y2 = (float(v) for v in box)
        ax.add_patch(
            Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=color, lw=1.5)
        )

    for row in range(count):
        axes[row, 0].imshow(x[row, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        draw(axes[row, 0], boxes[row], "lime")
        for col, name in enumerate(METHODS, start=1):
            relevance = maps[name][row].abs().amax(0).cpu()
            axes[row, col].imshow(relevance.numpy(), cmap="inferno")
            weak = box_from_attribution(
                maps[name][row : row + 1], quantile=metrics[f"quantile_{name}"]
            )
            draw(axes[row, col], boxes[row], "lime")
            draw(axes[row, col], weak[0], "cyan")
            iou = float(box_iou(weak, boxes[row : row + 1].to(weak.device))[0, 0])
            axes[row, col].set_title(f"{LABELS[name]}\nIoU {iou:.2f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    ctx.savefig(
        fig,
        "maps-and-boxes",
        f"seed {ctx.seed}: test scenes, their true box (green) and each method's map with its "
        "weak box (cyan)",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    fig, ax = plt.subplots(figsize=(7, 4))
    ious = np.array([[r[f"iou_{m}"] for m in METHODS] for r in results])
    estimates = [summary[f"iou_{m}"] for m in METHODS]
    ax.bar(
        range(len(METHODS)),
        [e.mean for e in estimates],
        yerr=interval_errors(estimates),
        capsize=4,
        color="tab:blue",
        alpha=0.8,
    )
    for k in range(len(METHODS)):
        ax.plot(np.full(len(results), k), ious[:, k], "k.", ms=4)
    for key, style, label in (
        ("iou_centre_box", "--", "centre box (no map)"),
        ("iou_random_map", ":", "random map"),
    ):
        ax.axhline(summary[key].mean, color="C3", ls=style, label=label)
    ax.legend(fontsize=8)
    ax.set_xticks(range(len(METHODS)), [LABELS[m] for m in METHODS], rotation=15, fontsize=8)
    ax.set(ylabel="mean IoU of weak box with true box", title="weak boxes from attribution maps")
    ctx.savefig(
        fig,
        "box-iou",
        "mean IoU per method (bars: mean and 95% interval over seeds; dots: seeds) and of the "
        "two baselines (red lines, means over seeds)",
    )

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    shares = np.linspace(0, 1, cfg.masking_steps + 1)
    for key, ax, label, color in (
        ("masking_own_logit", axes[0], "object's class", "tab:blue"),
        ("masking_other_logit", axes[0], "runner-up class", "tab:orange"),
        ("masking_own_prob", axes[1], "object's class", "tab:blue"),
        ("masking_other_prob", axes[1], "runner-up class", "tab:orange"),
    ):
        values = np.array([r[key] for r in results])
        ax.plot(shares, values.mean(0), "o-", color=color, label=label)
        for row in values:
            ax.plot(shares, row, color=color, alpha=0.25, lw=0.8)
    axes[0].set(xlabel="share of the object's box masked", ylabel="mean logit")
    axes[1].set(xlabel="share of the object's box masked", ylabel="mean probability")
    axes[0].legend(fontsize=8)
    deleted = np.linspace(0, 1, cfg.deletion_steps + 1)
    for name in (*METHODS, "random"):
        values = np.array([r[f"deletion_curve_{name}"] for r in results]).mean(0)
        style = "k--" if name == "random" else "-"
        axes[2].plot(deleted, values, style, label=LABELS.get(name, "random order"))
    axes[2].set(xlabel="share of pixels deleted (most relevant first)", ylabel="mean probability")
    axes[2].legend(fontsize=7)
    ctx.savefig(
        fig,
        "masking-and-deletion",
        "left/middle: masking the object's box from its centre outwards (the seed's figures; "
        "faint: seeds); right: deletion curves of each map against a random order",
    )
    # every seed explains the same number of test scenes: the mean of the seeds' mean curves is
    # the mean curve over all test scenes
    mean_curve = np.array([r["masking_own_prob"] for r in results]).mean(0)
    return {"masking_monotone_mean_curve": float(bool(np.all(np.diff(mean_curve) <= 0)))}
