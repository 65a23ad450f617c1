"""Faster R-CNN: detect litter on forest floor without firing on look-alikes.

For each seed: a Faster R-CNN (``mltricks.detection.faster_rcnn``; by default its small
backbone, which learns from random weights within the CPU budget) is trained through
``engine.fit`` on generated "litter on forest floor" scenes (plastic, metal, paper, glass;
unlabeled puddles, blossoms, berries and pale stones as confounders; some scenes hold no litter
and train as negatives). Object labels start at 1: the seed trained with every label 0, the
background class, so its box head never learned. After every epoch the held-out scenes are
scored: COCO mAP@0.5 and mAP@[.5:.95] with per-class AP, and detections that fire on a
confounder. The starting model is random unless ``--model PATH`` gives a local checkpoint
(torchvision's COCO weights with ``--set backbone=mobilenet_v3``, as the original project fine-tuned a
COCO-pretrained model; nothing is downloaded). ``--data PATH`` trains and evaluates on a real
Pascal VOC folder or COCO JSON file instead (a seeded 80/20 split), e.g. the Kaggle "litter on
forest floor" images with their XML boxes.

The strong simple baseline is the lab's logistic regression on pixels made a detector the
classic way (``baselines.sliding_window_detector``: windows of the detector's anchor shapes slid
over the image, one round of hard-negative mining, NMS), trained and scored on the same scenes:
a practitioner's first try would be a COCO-pretrained detector, which nothing here may download,
and the untrained model ("before") is beaten by any training.

Longer than the lab's 400 lines: the detector, the sliding-window baseline and the confounder
count are measured on the same generated scenes and the same held-out split.

What the original project did and what was wrong in it: docs/systems/faster-rcnn.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from mltricks.data import DetectionData, load_detection_data, make_scenes
from mltricks.detection import (
    collate_detection,
    confounder_false_positives,
    faster_rcnn,
    mean_average_precision,
    validate_targets,
)
from mltricks.lab import engine
from mltricks.lab.baselines import sliding_window_detector
from mltricks.lab.config_fields import data_only, existing_path
from mltricks.lab.experiment import Baseline, Claim, NotApplicable, Preset, RunContext, Summary
from mltricks.lab.training import names_learning_rates

SYSTEM = "Faster R-CNN Object Detection"
DESCRIPTION = (
    "Faster R-CNN on litter-on-forest-floor scenes: mAP and false positives on look-alikes"
)
DATA = "a Pascal VOC folder (one XML per image) or a COCO JSON file"
DATA_FORMATS = ("voc", "coco")


@dataclass
class Config:
    canvas_size: int = 96
    object_size: tuple[int, int] = (12, 24)
    num_objects: tuple[int, int] = (0, 3)
    num_confounders: tuple[int, int] = (1, 3)
    train_scenes: int = 300
    test_scenes: int = 60
    epochs: int = 2  # quick: after one epoch the detector has barely started (mAP@0.5 ~0.1)
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # the small backbone learns from random weights on a CPU in minutes; MobileNetV3 (the
    # builder's default, for real photos and COCO checkpoints) barely starts in that time
    backbone: str = "small"
    representation_size: int = 256
    box_batch_size_per_image: int = 64
    proposals: tuple[int, int] = (300, 100)
    anchor_sizes: tuple[int, ...] = (12, 16, 24, 32, 48)
    score_threshold: float = 0.5
    # --model: a local Faster R-CNN state dict to start from
    model_path: str | None = field(
        default=None, metadata=existing_path("a Faster R-CNN state-dict file (torch.save)")
    )
    # --data: real images are shrunk to this longer side and resized by the model to min_size
    max_side: int = field(default=512, metadata=data_only())
    min_size: int = field(default=320, metadata=data_only())
    test_fraction: float = 0.2


PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "canvas_size": 48,
            "object_size": (10, 14),
            "train_scenes": 4,
            "test_scenes": 2,
            "epochs": 2,  # the confounder claim compares the last epoch with an earlier one
            "batch_size": 2,
            "representation_size": 32,
            "box_batch_size_per_image": 16,
            "proposals": (50, 20),
        },
    ),
    "quick": Preset(seeds=(0,)),
    "full": Preset(seeds=(0,), config={"train_scenes": 1500, "test_scenes": 100, "epochs": 6}),
}

CLAIMS = (
    Claim(
        "mAP@0.5 on held-out scenes is at least 0.7",
        lambda s: s["map_50"].mean >= 0.7,
        ("map_50", "map", "map_50_before"),
    ),
    Claim(
        "Faster R-CNN's held-out mAP@0.5 is above the sliding-window baseline's (logistic "
        "regression on the pixels of windows of the anchors' shapes, hard-negative mining, "
        "trained on the same scenes; one seed, and on quick 2 epochs on 300 scenes)",
        lambda s: s["map_50"].mean > s["map_50_sliding_window"].mean,
        ("map_50", "map_50_sliding_window", "map_50_before"),
        presets=("quick", "full"),
    ),
    Claim(
        "false positives on confounders (puddles, blossoms, berries, pale stones) fall during "
        "training: fewer per held-out scene after the last epoch than at their peak after an "
        "earlier epoch",
        lambda s: _confounder_fp_falls(s),
        ("confounder_fp_peak", "confounder_fp_final"),
    ),
)


BASELINES = (
    Baseline(
        "map_50",
        "map_50_sliding_window",
        what="the Faster R-CNN",
        fix="more epochs with --set epochs=N (full: 6)",
        preset="full",
    ),
)


def _confounder_fp_falls(s: Summary) -> bool:
    if not s["planted_confounders"].mean:
        raise NotApplicable(
            "the --data set does not annotate confounders; only the generated scenes plant them"
        )
    return s["confounder_fp_final"].mean < s["confounder_fp_peak"].mean


def _scenes(cfg: Config, count: int, seed: int) -> tuple[DetectionData, list[torch.Tensor]]:
    scenes = make_scenes(
        count,
        canvas_size=cfg.canvas_size,
        num_objects=cfg.num_objects,
        num_distractors=cfg.num_confounders,
        object_size=cfg.object_size,
        style="litter",
        random_state=seed,
    )
    names = [f"scene {i} (seed {seed})" for i in range(count)]
    data = DetectionData(list(scenes.images), scenes.targets(), scenes.class_names, names)
    return data, scenes.distractor_boxes


def _data(cfg: Config, ctx: RunContext) -> tuple[DetectionData, DetectionData, list | None]:
    if ctx.data is None:
        train, _ = _scenes(cfg, cfg.train_scenes, 1000 + ctx.seed)
        test, confounders = _scenes(cfg, cfg.test_scenes, 2000 + ctx.seed)
        return train, test, confounders
    data = load_detection_data(ctx.data, max_side=cfg.max_side)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(ctx.seed))
    num_test = max(1, round(cfg.test_fraction * len(data)))
    if len(data) - num_test < 1:
        raise ValueError(f"--data '{ctx.data}' holds {len(data)} image(s); at least 2 are needed")
    return data.subset(order[num_test:].tolist()), data.subset(order[:num_test].tolist()), None


def _detection_step(model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The detector's loss dict, summed: classifier, box regression, objectness, RPN boxes."""
    images, targets = batch
    losses = model(images, targets)
    return sum(losses.values()), {k: float(v.detach()) for k, v in losses.items()}


def _predict(model: torch.nn.Module, data: DetectionData, batch_size: int) -> list[dict]:
    """Detections for every image, through ``engine.predict`` (packed into fixed-size rows)."""
    limit = int(engine.unwrap(model).roi_heads.detections_per_img)  # type: ignore[union-attr,arg-type]

    def pack(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        rows = torch.full((len(batch[0]), limit, 6), -1.0, device=batch[0][0].device)
        for i, out in enumerate(m(batch[0])):
            n = len(out["scores"])
            rows[i, :n] = torch.cat(
                [out["boxes"], out["scores"][:, None], out["labels"][:, None].float()], 1
            )
        return rows

    loader = engine.make_loader(data, batch_size=batch_size, collate_fn=collate_detection)
    packed = engine.predict(model, loader, fn=pack)
    detections = []
    for rows in packed:
        rows = rows[rows[:, 5] >= 1]  # padding rows carry label -1
        detections.append({"boxes": rows[:, :4], "scores": rows[:, 4], "labels": rows[:, 5].long()})
    return detections


def _score(
    detections: list[dict], test: DetectionData, confounders: list | None, cfg: Config
) -> dict[str, Any]:
    result = mean_average_precision(detections, test.targets)
    scores: dict[str, Any] = {
        "map_50": float(result["map_50"]),
        "map": float(result["map"]),
        "ap50_per_class": {
            test.class_names[int(c)]: float(v)
            for c, v in zip(result["classes"], result["map_50_per_class"])
        },
    }
    if confounders is not None:
        counts = confounder_false_positives(
            detections, test.targets, confounders, score_threshold=cfg.score_threshold
        )
        scores["confounder_fp"] = float(counts.float().mean())
    return scores


def _model(cfg: Config, ctx: RunContext, train: DetectionData) -> torch.nn.Module:
    """The detector for the data: the scenes' own size and anchors, or sizes for real photos
    with ``--data``; the targets are checked first (label 0, inverted or outside boxes raise,
    naming the image)."""
    validate_targets(
        train.targets,
        [(int(image.shape[-2]), int(image.shape[-1])) for image in train.images],
        num_classes=train.num_classes,
        names=train.names,
    )
    size = cfg.canvas_size if ctx.data is None else cfg.min_size
    return faster_rcnn(
        train.num_classes,
        backbone=cfg.backbone,
        weights=cfg.model_path,
        min_size=size,
        max_size=size if ctx.data is None else max(size, cfg.max_side),
        anchor_sizes=_anchor_sizes(cfg, ctx),
        representation_size=cfg.representation_size if cfg.model_path is None else 1024,
        box_batch_size_per_image=cfg.box_batch_size_per_image,
        proposals=cfg.proposals,
    )


def _anchor_sizes(cfg: Config, ctx: RunContext) -> tuple[int, ...]:
    """The scenes' object sizes, or sizes for real photos with ``--data``."""
    return cfg.anchor_sizes if ctx.data is None else (32, 64, 128, 256, 512)


def _baseline(
    cfg: Config, ctx: RunContext, train: DetectionData, test: DetectionData, confounders
) -> dict[str, float]:
    """The sliding-window detector on the same scenes, scored like the network."""
    sizes = _anchor_sizes(cfg, ctx)
    detections = sliding_window_detector(
        train.images,
        train.targets,
        test.images,
        window_sizes=sizes,
        stride=min(sizes) / 3,
        random_state=ctx.seed,
    )
    scores = _score(detections, test, confounders, cfg)
    return {f"{k}_sliding_window": v for k, v in scores.items() if not isinstance(v, dict)}


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    train, test, confounders = _data(cfg, ctx)
    model = _model(cfg, ctx, train)
    before = _predict(model, test, cfg.batch_size)
    before_scores = _score(before, test, confounders, cfg)
    per_epoch: list[dict[str, Any]] = []

    def evaluate(epoch: int, row: dict[str, float]) -> None:
        scores = _score(_predict(model, test, cfg.batch_size), test, confounders, cfg)
        per_epoch.append(scores)
        row.update({f"test_{k}": v for k, v in scores.items() if not isinstance(v, dict)})
        ctx.log(f"seed {ctx.seed} epoch {epoch}: {row}")

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loader = engine.make_loader(
        train,
        batch_size=cfg.batch_size,
        shuffle=True,
        random_state=ctx.seed,
        collate_fn=collate_detection,
    )
    total_steps = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.1
    )
    history = engine.fit(
        model,
        loader,
        optimizer,
        epochs=cfg.epochs,
        step_fn=_detection_step,
        scheduler=scheduler,
        max_grad_norm=10.0,
        callbacks=[evaluate],
        desc="faster r-cnn",
    )
    after = _predict(model, test, cfg.batch_size)
    final = per_epoch[-1]
    baseline = _baseline(cfg, ctx, train, test, confounders)
    if ctx.first_seed:
        _plot_boxes(ctx, test, confounders, before, after, cfg.score_threshold)
    metrics: dict[str, Any] = {
        "map_50": final["map_50"],
        "map": final["map"],
        "map_50_before": before_scores["map_50"],
        "map_50_curve": [s["map_50"] for s in per_epoch],
        "map_curve": [s["map"] for s in per_epoch],
        "train_loss_curve": history.column("train_loss"),
        "ap50_per_class": final["ap50_per_class"],
        "steps": len(history.steps),
        "planted_confounders": confounders is not None,
        **baseline,
        **{f"ap50_{name}": value for name, value in final["ap50_per_class"].items()},
    }
    if confounders is not None:
        curve = [s["confounder_fp"] for s in per_epoch]
        metrics.update(
            confounder_fp_before=before_scores["confounder_fp"],
            confounder_fp_curve=curve,
            confounder_fp_peak=max(curve[:-1]) if len(curve) > 1 else math.nan,
            confounder_fp_final=curve[-1],
        )
    return metrics


def _draw(ax: Any, image: torch.Tensor, boxes: Any, labels: Any, names: tuple, colour: str, **kw):
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    for box, label in zip(boxes, labels):
        x1, y1, x2, y2 = (float(v) for v in box)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.2, **kw))
        if label is not None:
            ax.text(
                x1,
                y1 - 1,
                label if isinstance(label, str) else names[int(label)],
                color=colour,
                fontsize=6,
                va="bottom",
            )
    ax.set_axis_off()


def _plot_boxes(
    ctx: RunContext,
    test: DetectionData,
    confounders: list | None,
    before: list[dict],
    after: list[dict],
    threshold: float,
) -> None:
    count = min(4, len(test))
    fig, axes = plt.subplots(count, 3, figsize=(9, 3 * count), squeeze=False)
    for i in range(count):
        image, target = test[i]
        _draw(axes[i, 0], image, target["boxes"], target["labels"], test.class_names, "lime")
        if confounders is not None:
            _draw(
                axes[i, 0], image, confounders[i], [None] * len(confounders[i]), (), "red", ls="--"
            )
        for column, detections in ((1, before[i]), (2, after[i])):
            keep = detections["scores"] >= threshold
            labels = [
                f"{test.class_names[int(lab)]} {float(s):.2f}"
                for lab, s in zip(detections["labels"][keep], detections["scores"][keep])
            ]
            _draw(axes[i, column], image, detections["boxes"][keep], labels, (), "yellow")
        if i == 0:
            for column, title in enumerate(("annotation", "before training", "fine-tuned")):
                axes[i, column].set_title(title)
    ctx.savefig(
        fig,
        "boxes-before-after",
        f"seed {ctx.seed}: held-out scenes; annotation (green, dashed red = unlabeled "
        f"confounders), detections with score >= {threshold} of the starting model and of the "
        "fine-tuned model (the seed's annotation / pretrained / fine-tuned grid)",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    epochs = np.arange(1, len(results[0]["map_50_curve"]) + 1)
    for seed, r in zip(ctx.seeds, results):
        axes[0].plot(epochs, r["map_50_curve"], "-o", ms=3, label=f"mAP@0.5 seed {seed}")
        axes[0].plot(epochs, r["map_curve"], "--", lw=1, label=f"mAP@[.5:.95] seed {seed}")
        axes[1].plot(epochs, r["train_loss_curve"], "-o", ms=3, label=f"seed {seed}")
        if "confounder_fp_curve" in r:
            axes[2].plot(epochs, r["confounder_fp_curve"], "-o", ms=3, label=f"seed {seed}")
    axes[0].axhline(0.7, color="gray", ls=":", lw=1)
    axes[0].axhline(
        summary["map_50_sliding_window"].mean,
        color="C3",
        ls="--",
        lw=1,
        label="mAP@0.5 sliding-window baseline",
    )
    axes[0].set(xlabel="epoch", ylabel="held-out mAP", title="mean average precision", ylim=(0, 1))
    axes[1].set(xlabel="epoch", ylabel="summed detection loss", title="training loss")
    axes[2].set(
        xlabel="epoch",
        ylabel=f"detections per scene (score >= {cfg.score_threshold})",
        title="false positives on confounders",
    )
    for ax in axes:
        ax.legend(fontsize=7)
    ctx.savefig(
        fig,
        "training-curves",
        "held-out mAP, training loss and confounder false positives after every epoch; dashed "
        "red: the sliding-window baseline's mAP@0.5",
    )
    classes = list(results[0]["ap50_per_class"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    values = np.array([[r["ap50_per_class"].get(c, np.nan) for c in classes] for r in results])
    ax.bar(classes, np.nanmean(values, 0), color="C2")
    ax.set(ylabel="AP@0.5 (held-out)", ylim=(0, 1), title="per-class AP after training")
    ctx.savefig(fig, "per-class-ap", "average precision at IoU 0.5 per class, mean over seeds")
    return {}
