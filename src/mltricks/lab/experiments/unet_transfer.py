"""U-Net transfer: does an encoder pretrained on classification segment better?

For each seed: a U-Net's encoder is pretrained through ``classify`` on single-digit scene crops
(the digit is the class). A second U-Net receives that encoder (checked: equal to the pretrained
tensors, changed from its own initialisation) and learns to segment digit scenes, per-pixel
class = digit + 1, in the original project's two stages: decoder only with the encoder frozen, then end to end
with a ten times smaller encoder learning rate. The same U-Net from scratch trains end to end for
the same number of steps on the same batches. Both are scored after every epoch on held-out
scenes drawn from held-out digits: mean IoU and Dice over the 11 classes (torchmetrics).

The strong simple baseline is the scratch U-Net trained longer, for as many optimizer steps as
pretraining and both fine-tuning stages together (on the same batches, scored once at the end):
a practitioner who can afford the pretraining steps can spend them on the segmentation itself,
so transfer is worth it only if it beats that.

Longer than the lab's 400 lines: the pretraining, the transferred and the from-scratch U-Nets
and the longer-training baseline share the pretrained weights and the same held-out scenes.

What the original project did and what was wrong in it: docs/systems/unet-transfer.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from mltricks.data import make_scenes
from mltricks.lab import engine
from mltricks.lab.experiment import Claim, Preset, RunContext, Summary
from mltricks.lab.training import names_learning_rates
from mltricks.models import UNet

SYSTEM = "Transfer Learning with U-Net"
DESCRIPTION = "U-Net with a classification-pretrained, two-stage fine-tuned encoder vs scratch"
DATA = None


@dataclass
class Config:
    canvas_size: int = 48
    object_size: tuple[int, int] = (14, 22)
    base_channels: int = 16
    depth: int = 3
    # pretraining: classify single-digit crops
    pretrain_crops: int = 1000
    crop_size: int = 32
    pretrain_epochs: int = 2
    pretrain_lr: float = 2e-3
    # segmentation: few labeled scenes, so what the encoder brings shows
    train_scenes: int = 64
    test_scenes: int = 100
    stage1_epochs: int = 4
    stage2_epochs: int = 8
    batch_size: int = 16
    lr: float = 2e-3
    encoder_lr_factor: float = 0.1


PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "canvas_size": 32,
            "object_size": (12, 14),
            "base_channels": 4,
            "depth": 2,
            "pretrain_crops": 64,
            "crop_size": 16,
            "pretrain_epochs": 1,
            "train_scenes": 16,
            "test_scenes": 8,
            "stage1_epochs": 1,
            "stage2_epochs": 1,
        },
    ),
    "quick": Preset(seeds=(0, 1)),
    "full": Preset(seeds=tuple(range(5)), config={"pretrain_crops": 4000, "pretrain_epochs": 3}),
}

CLAIMS = (
    Claim(
        "the transferred U-Net reaches a higher mean IoU on held-out scenes than the same U-Net "
        "trained from scratch for the same number of steps (a weaker bar for quick: mean over "
        "its 2 seeds, with a quarter of full's pretraining crops)",
        lambda s: s["miou_transfer"].mean > s["miou_scratch"].mean,
        ("miou_transfer", "miou_scratch", "miou_gain"),
        presets=("quick",),
        min_seeds=2,
    ),
    Claim(
        "the transferred U-Net reaches a higher mean IoU on held-out scenes than the same U-Net "
        "trained from scratch for the same number of steps (mean over seeds)",
        lambda s: s["miou_transfer"].mean > s["miou_scratch"].mean,
        ("miou_transfer", "miou_scratch", "miou_gain"),
        min_seeds=5,
    ),
    Claim(
        "the segmentation U-Net's encoder holds exactly the pretrained tensors, which differ "
        "from its own initialisation",
        lambda s: s["encoder_loaded"].mean == 1.0,
        ("encoder_loaded",),
        min_seeds=5,
    ),
    Claim(
        "the transferred U-Net reaches a higher mean IoU on held-out scenes than the same U-Net "
        "trained from scratch for as many optimizer steps as pretraining and fine-tuning "
        "together (mean over seeds: 2 on quick, 5 on full)",
        lambda s: s["miou_transfer"].mean > s["miou_scratch_long"].mean,
        ("miou_transfer", "miou_scratch_long", "miou_gain_over_scratch_long", "steps_scratch_long"),
        presets=("quick", "full"),
        min_seeds=2,
    ),
)


class _Classifier(nn.Module):
    """``forward`` is ``unet.classify``: the engine's step functions call ``model(...)``."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet.classify(x)


def _unet(cfg: Config) -> UNet:
    return UNet(1, 11, base_channels=cfg.base_channels, depth=cfg.depth, num_pretrain_classes=10)


def _predicted_masks(model: nn.Module, loader: Any) -> torch.Tensor:
    """Per-pixel classes ``(N, H, W)`` of the images of ``loader``."""
    return engine.predict(model, loader, fn=lambda m, batch: m(batch[0]).argmax(1))


def _encoder_state(unet: UNet) -> dict[str, torch.Tensor]:
    """A copy of the encoder's tensors, safe from later training."""
    return {k: v.detach().clone() for k, v in unet.encoder.state_dict().items()}


def _scores(model: nn.Module, loader: Any, masks: torch.Tensor) -> dict[str, float]:
    predicted = _predicted_masks(model, loader)
    iou = MulticlassJaccardIndex(num_classes=11, average="macro")(predicted, masks)
    dice = MulticlassF1Score(num_classes=11, average="macro", multidim_average="global")(
        predicted.flatten(), masks.flatten()
    )
    return {"miou": float(iou), "dice": float(dice)}


def _scenes(cfg: Config, seed: int) -> tuple[Any, torch.Tensor, Any, Any]:
    """Single-digit crops with their classes for pretraining and segmentation scenes for
    training, all from the training digits; test scenes from the held-out digits."""
    crops = make_scenes(
        cfg.pretrain_crops,
        canvas_size=cfg.crop_size,
        num_objects=1,
        num_distractors=(0, 1),
        object_size=(
            min(cfg.object_size[0], cfg.crop_size),
            min(cfg.object_size[1], cfg.crop_size),
        ),
        source="train",
        random_state=1000 + seed,
    )
    crop_labels = torch.stack([labels[0] - 1 for labels in crops.labels])
    scene_args: dict[str, Any] = {"canvas_size": cfg.canvas_size, "object_size": cfg.object_size}
    train = make_scenes(cfg.train_scenes, **scene_args, source="train", random_state=2000 + seed)
    test = make_scenes(cfg.test_scenes, **scene_args, source="test", random_state=3000 + seed)
    return crops, crop_labels, train, test


def _pretrain(
    cfg: Config, crops: Any, crop_labels: torch.Tensor, seed: int
) -> tuple[engine.History, dict[str, torch.Tensor]]:
    """A U-Net's encoder trained as a digit classifier; its training history and weights."""
    pretrained = _unet(cfg)
    history = engine.fit(
        _Classifier(pretrained),
        engine.make_loader(
            crops.images, crop_labels, batch_size=64, shuffle=True, random_state=seed
        ),
        torch.optim.Adam(pretrained.parameters(), lr=cfg.pretrain_lr),
        epochs=cfg.pretrain_epochs,
        desc="pretrain",
    )
    return history, _encoder_state(pretrained)


def _receive_encoder(cfg: Config, encoder: dict[str, torch.Tensor]) -> tuple[UNet, bool]:
    """A fresh U-Net holding ``encoder``, and whether it holds exactly those tensors and they
    differ from its own initialisation (the transfer really happened)."""
    transfer = _unet(cfg)
    initial = _encoder_state(transfer)
    transfer.encoder.load_state_dict(encoder)
    current = transfer.encoder.state_dict()
    loaded = all(torch.equal(current[k].cpu(), encoder[k].cpu()) for k in current)
    changed = any(
        not torch.equal(initial[k], encoder[k].cpu())
        for k in current
        if initial[k].is_floating_point()
    )
    return transfer, loaded and changed


def _fine_tune(
    cfg: Config,
    transfer: UNet,
    encoder: dict[str, torch.Tensor],
    train_loader: Callable[[], Any],
    callback: Callable[[int, dict[str, float]], None],
) -> tuple[engine.History, engine.History, bool]:
    """Stage 1 trains the decoder with the encoder frozen (BatchNorm statistics too), stage 2
    end to end with a smaller learning rate for the encoder. Returns both histories and whether
    stage 1 left the encoder untouched."""
    transfer.freeze_encoder()
    stage1 = engine.fit(
        transfer,
        train_loader(),
        torch.optim.Adam(transfer.param_groups(encoder_lr=0.0, decoder_lr=cfg.lr)),
        epochs=cfg.stage1_epochs,
        callbacks=[callback],
        desc="stage 1",
    )
    frozen_unchanged = all(
        torch.equal(v.cpu(), encoder[k].cpu()) for k, v in transfer.encoder.state_dict().items()
    )
    transfer.unfreeze_encoder()
    stage2 = engine.fit(
        transfer,
        train_loader(),
        torch.optim.Adam(
            transfer.param_groups(encoder_lr=cfg.lr * cfg.encoder_lr_factor, decoder_lr=cfg.lr)
        ),
        epochs=cfg.stage2_epochs,
        callbacks=[callback],
        desc="stage 2",
    )
    return stage1, stage2, frozen_unchanged


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    seed = ctx.seed
    crops, crop_labels, train, test = _scenes(cfg, seed)
    test_loader = engine.make_loader(test.images, test.masks, batch_size=64)

    def train_loader() -> Any:  # the same batches in the same order for both models
        return engine.make_loader(
            train.images, train.masks, batch_size=cfg.batch_size, shuffle=True, random_state=seed
        )

    def scorer(model: nn.Module) -> Callable[[int, dict[str, float]], None]:
        def callback(epoch: int, row: dict[str, float]) -> None:
            for key, value in _scores(model, test_loader, test.masks).items():
                row[f"test_{key}"] = value

        return callback

    pretrain_history, encoder = _pretrain(cfg, crops, crop_labels, seed)
    transfer, loaded = _receive_encoder(cfg, encoder)
    ctx.log(f"seed {seed}: encoder loaded and differs from its initialisation: {loaded}")
    stage1, stage2, frozen_unchanged = _fine_tune(
        cfg, transfer, encoder, train_loader, scorer(transfer)
    )
    # scratch: same architecture, same batches, same number of steps
    scratch = _unet(cfg)
    scratch_history = engine.fit(
        scratch,
        train_loader(),
        torch.optim.Adam(scratch.param_groups(encoder_lr=cfg.lr, decoder_lr=cfg.lr)),
        epochs=cfg.stage1_epochs + cfg.stage2_epochs,
        callbacks=[scorer(scratch)],
        desc="scratch",
    )

    pretrain_steps = int(pretrain_history.last["step"])
    long_steps = pretrain_steps + int(scratch_history.last["step"])
    long_curve = _scratch_long(cfg, long_steps, train_loader, test_loader, test.masks)
    transfer_rows = stage1.epochs + stage2.epochs
    steps_per_epoch = stage1.epochs[0]["step"]
    transfer_steps = [
        row["step"] + (steps_per_epoch * cfg.stage1_epochs if i >= cfg.stage1_epochs else 0)
        for i, row in enumerate(transfer_rows)
    ]
    curves = {
        "steps": transfer_steps,
        "miou_transfer_curve": [row["test_miou"] for row in transfer_rows],
        "dice_transfer_curve": [row["test_dice"] for row in transfer_rows],
        "miou_scratch_curve": scratch_history.column("test_miou"),
        "dice_scratch_curve": scratch_history.column("test_dice"),
    }
    if ctx.first_seed:
        _plot_masks(ctx, test, transfer, scratch)
    return {
        "miou_transfer": curves["miou_transfer_curve"][-1],
        "miou_scratch": curves["miou_scratch_curve"][-1],
        "miou_gain": curves["miou_transfer_curve"][-1] - curves["miou_scratch_curve"][-1],
        "dice_transfer": curves["dice_transfer_curve"][-1],
        "dice_scratch": curves["dice_scratch_curve"][-1],
        "miou_after_stage1": curves["miou_transfer_curve"][cfg.stage1_epochs - 1],
        "pretrain_train_accuracy": pretrain_history.last["train_accuracy"],
        "encoder_loaded": float(loaded),
        "encoder_unchanged_in_stage1": float(frozen_unchanged),
        "steps_each": int(scratch_history.last["step"]),
        "steps_pretraining": pretrain_steps,
        "steps_scratch_long": long_steps,
        "miou_scratch_long": long_curve[-1][1],
        "miou_gain_over_scratch_long": curves["miou_transfer_curve"][-1] - long_curve[-1][1],
        "miou_scratch_long_curve": long_curve,
        **curves,
    }


def _scratch_long(
    cfg: Config, steps: int, train_loader: Callable[[], Any], test_loader: Any, masks: torch.Tensor
) -> list[tuple[int, float]]:
    """The baseline: a scratch U-Net trained end to end for ``steps`` optimizer steps on the
    same batches; ``(step, held-out mean IoU)`` at about eight points, the last at ``steps``."""
    scratch = _unet(cfg)
    loader = train_loader()
    epochs = math.ceil(steps / len(loader))
    every = math.ceil(epochs / 8)
    curve: list[tuple[int, float]] = []

    def callback(epoch: int, row: dict[str, float]) -> None:
        if epoch % every == 0 or row["step"] >= steps:  # epoch counts from 1
            curve.append((int(row["step"]), _scores(scratch, test_loader, masks)["miou"]))

    engine.fit(
        scratch,
        loader,
        torch.optim.Adam(scratch.param_groups(encoder_lr=cfg.lr, decoder_lr=cfg.lr)),
        epochs=epochs,
        max_steps=steps,
        callbacks=[callback],
        desc="scratch, longer",
    )
    if not curve or curve[-1][0] != steps:
        raise RuntimeError(f"the longer scratch training stopped before its {steps} steps")
    return curve


def _plot_masks(ctx: RunContext, test: Any, transfer: nn.Module, scratch: nn.Module) -> None:
    count = min(4, len(test))
    x = test.images[:count]
    loader = engine.make_loader(x, batch_size=count)
    outputs = {
        name: _predicted_masks(model, loader)
        for name, model in (("scratch", scratch), ("transfer", transfer))
    }
    fig, axes = plt.subplots(count, 4, figsize=(8, 2 * count), squeeze=False)
    for i in range(count):
        panels = [
            ("scene", x[i, 0].numpy()),
            ("truth", test.masks[i].numpy()),
            ("scratch", outputs["scratch"][i].numpy()),
            ("transfer", outputs["transfer"][i].numpy()),
        ]
        for ax, (title, image) in zip(axes[i], panels):
            if title == "scene":
                ax.imshow(image, cmap="gray")
            else:
                ax.imshow(image, cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title)
    ctx.savefig(
        fig,
        "example-masks",
        f"seed {ctx.seed}: held-out scenes, true masks and the predicted masks of both U-Nets "
        "(colour = digit class, dark blue = background)",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("miou", "dice")):
        for name, colour in (("transfer", "C0"), ("scratch", "C1")):
            curves = np.array([r[f"{metric}_{name}_curve"] for r in results])
            steps = np.array(results[0]["steps"])
            for curve in curves:
                ax.plot(steps, curve, color=colour, alpha=0.25, lw=0.8)
            ax.plot(steps, curves.mean(0), color=colour, lw=2, label=f"{name} (mean)")
        boundary = results[0]["steps"][cfg.stage1_epochs - 1]
        ax.axvline(boundary, color="gray", ls="--", lw=1)
        ax.text(boundary, ax.get_ylim()[0], " stage 2 ", fontsize=8, color="gray")
        ax.set(xlabel="optimizer steps", ylabel=f"held-out {metric}", title=metric)
        ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "iou-dice-per-epoch",
        "mean IoU and Dice on held-out scenes after every epoch, per seed (thin) and mean "
        "(thick); left of the dashed line the transferred encoder is frozen",
    )

    fig, ax = plt.subplots(figsize=(6, 4))
    long = np.array([r["miou_scratch_long_curve"] for r in results])  # (seeds, points, 2)
    for curve in long:
        ax.plot(curve[:, 0], curve[:, 1], color="C1", alpha=0.25, lw=0.8)
    ax.plot(long[0, :, 0], long[:, :, 1].mean(0), "o-", color="C1", label="scratch, longer (mean)")
    ax.axhline(summary["miou_transfer"].mean, color="C0", ls="--", label="transfer, final (mean)")
    ax.axvline(results[0]["steps_each"], color="gray", ls=":", lw=1)
    ax.set(xlabel="optimizer steps", ylabel="held-out miou", title="the longer-trained baseline")
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "scratch-longer",
        "the scratch U-Net trained for as many steps as pretraining and fine-tuning together "
        "(per seed thin, mean thick) against the transferred U-Net's final mean IoU; dotted: "
        "the fine-tuning steps both U-Nets of the main comparison get",
    )
    return {}
