"""Autoencoder: pretraining speeds up a classifier, reconstruction transfers between
similar data sets, and decoded noisy codes serve as augmentation.

For each seed:

(a) a convolutional autoencoder learns to reconstruct all training images (no labels); a
    classifier made of its encoder and a linear head then trains on a few labeled images, next to
    the same classifier from scratch (same head initialisation, so only the encoder weights
    differ). Test accuracy per epoch shows how fast each reaches the scratch model's final
    accuracy. The pretrained classifier is built from the autoencoder object that was just
    trained and checked to hold its weights (the seed loaded the wrong checkpoint).
(b) autoencoders trained on digits, on crops of generated scenes (digits and shapes on a noisy
    canvas) and on noise with the digits' pixel statistics each reconstruct the held-out images
    of all three: the seed's cross-data-set table.
(c) the scratch classifier again, with half of each batch replaced by decoded noisy codes of the
    pretrained autoencoder (``decode(encode(x) + noise)``): accuracy with and without.

With ``--data`` the digits are an MNIST-format IDX folder's images (MNIST, Fashion-MNIST; the
folder itself or its ``mnist/`` subfolder), padded to 32x32, and the similar data set is CIFAR-100
in gray (``cifar-100-python/`` in the same folder) or, when the folder has no CIFAR-100 batches,
generated scene crops at 32x32 as without ``--data``.

The strong simple baselines of (a), on the same labelled images: the same classifier trained on
them alone (the scratch classifier: supervised-only training of the same network) and logistic
regression on their pixels (``accuracy_logreg``), what a practitioner tries first with 200
labels.

Longer than the lab's 400 lines: the three parts share their trained autoencoders (the digits'
one is (a)'s encoder and (c)'s augmenter), so they stay one experiment, trained once per seed.

What the original project did and what was wrong in it: docs/systems/autoencoder.md.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.data import load_cifar, load_digits_images, make_scenes
from mltricks.lab import engine
from mltricks.lab.baselines import logistic_regression_accuracy
from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import read_images
from mltricks.lab.experiment import Baseline, Claim, Preset, RunContext, Summary
from mltricks.lab.plots import show_image
from mltricks.lab.splits import labeled_split
from mltricks.lab.training import names_learning_rates
from mltricks.models import Autoencoder

SYSTEM = "Autoencoder"
DESCRIPTION = "AE pretraining vs scratch, cross-data-set reconstruction, AE noise as augmentation"
DATA = (
    "an MNIST-format IDX folder (MNIST, Fashion-MNIST), optionally with CIFAR-100's "
    "cifar-100-python/ batches in it (the similar data set; generated scene crops without them)"
)
DATA_FORMATS = ("mnist",)


@dataclass
class Config(DataSubset):
    latent_dim: int = 32
    channels: tuple[int, ...] = (32, 64)
    ae_epochs: int = 15
    ae_lr: float = 2e-3
    batch_size: int = 128
    labeled_per_class: int = 20  # labeled training images per class for the classifiers
    clf_epochs: int = 15
    clf_lr: float = 1e-3
    clf_batch_size: int = 32
    final_window: int = 3  # "final accuracy" = mean test accuracy of the last epochs
    num_scene_crops: int = 1500
    aug_noise: float = 0.5  # latent noise, in units of each code dimension's spread
    aug_share: float = 0.5  # share of each batch replaced by decoded noisy codes
    eval_batch_size: int = 512


# with --data: images read per data set and split; the same subset for every seed (subset_seed
# 0), as the published Fashion-MNIST results were measured (README)
DATA_CONFIG = {"max_train": 2000, "max_test": 1000, "subset_seed": 0}
PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "channels": (8, 16),
            "ae_epochs": 1,
            "clf_epochs": 2,
            "final_window": 1,
            "labeled_per_class": 5,
            "num_scene_crops": 200,
        },
        data_config={"max_train": 200, "max_test": 200},
    ),
    "quick": Preset(seeds=(0, 1)),
    # with --data: 3 autoencoders x 10 epochs on 2,000 Fashion-MNIST images, the classifiers 40
    # epochs on 200 labeled ones, where scripts/budget_autoencoder.py finds both classifiers'
    # accuracy stops rising (scratch 0.723 at 20 epochs, 0.738 at 40, 0.736 at 60) and above
    # logistic regression (0.720); 30 autoencoder epochs or 8,000 images change it by under 0.01
    "full": Preset(
        seeds=tuple(range(5)),
        config={"ae_epochs": 30, "clf_epochs": 20},
        data_config={"ae_epochs": 10, "clf_epochs": 40},
    ),
}

CLAIMS = (
    Claim(
        "the classifier with the autoencoder-pretrained encoder ends with a higher test accuracy "
        "than the same classifier from scratch (mean of the last epochs, mean over seeds: "
        "quick's 2 or full's 5)",
        lambda s: s["final_accuracy_pretrained"].mean > s["final_accuracy_scratch"].mean,
        ("final_accuracy_pretrained", "final_accuracy_scratch", "accuracy_logreg"),
        presets=("quick", "full"),
        min_seeds=2,
    ),
    Claim(
        "the classifier with the autoencoder-pretrained encoder reaches the scratch model's "
        "final test accuracy in fewer epochs",
        lambda s: s["epochs_to_target_pretrained"].mean < s["epochs_to_target_scratch"].mean,
        ("epochs_to_target_pretrained", "epochs_to_target_scratch", "final_accuracy_scratch"),
        min_seeds=5,
    ),
    Claim(
        "autoencoders trained on one of two similar data sets (digits and scene crops; with "
        "--data the MNIST-format set and CIFAR-100, or scene crops without it) reconstruct the other with a lower error than noise of the "
        "digits' pixel statistics (error relative to each data set's pixel variance)",
        lambda s: s["relative_error_similar"].mean < s["relative_error_dissimilar"].mean,
        ("relative_error_similar", "relative_error_dissimilar", "mse_similar", "mse_dissimilar"),
        min_seeds=5,
    ),
    Claim(
        "the strong simple baseline: the classifier with the autoencoder-pretrained encoder "
        "beats logistic regression on the same labelled images (final test accuracy, mean over "
        "seeds)",
        lambda s: s["final_accuracy_pretrained"].mean > s["accuracy_logreg"].mean,
        ("final_accuracy_pretrained", "accuracy_logreg", "final_accuracy_scratch"),
        min_seeds=5,
    ),
)
BASELINES = (
    Baseline(
        "final_accuracy_scratch",
        "accuracy_logreg",
        what="the classifier trained from scratch on the labelled images",
        fix="more classifier epochs (--set clf_epochs=40)",
        preset="full",
    ),
    Baseline(
        "final_accuracy_pretrained",
        "accuracy_logreg",
        what="the classifier with the autoencoder-pretrained encoder",
        fix="more classifier epochs (--set clf_epochs=40)",
        preset="full",
    ),
)


# --- data ----------------------------------------------------------------------------------------


def scene_crops(num: int, size: int, source: str, random_state: int) -> torch.Tensor:
    """Square crops around the objects and distractors of generated scenes, resized to
    ``size``: digit strokes and shapes on a noisy dark background."""
    scenes = make_scenes(
        max(1, num // 3),
        canvas_size=48,
        num_objects=(1, 3),
        num_distractors=(1, 2),
        object_size=(12, 20),
        source=source,
        random_state=random_state,
    )
    rng = np.random.default_rng(random_state)
    crops = []
    for image, boxes, others in zip(scenes.images, scenes.boxes, scenes.distractor_boxes):
        for x1, y1, x2, y2 in torch.cat([boxes, others]).tolist():
            side = int(max(x2 - x1, y2 - y1) * rng.uniform(1.1, 1.5))
            cx, cy = (x1 + x2) / 2 + rng.normal(0, 2), (y1 + y2) / 2 + rng.normal(0, 2)
            left = int(np.clip(cx - side / 2, 0, image.shape[-1] - side))
            top = int(np.clip(cy - side / 2, 0, image.shape[-2] - side))
            crop = image[:, top : top + side, left : left + side][None]
            crops.append(F.interpolate(crop, size=(size, size), mode="area")[0])
    return torch.stack(crops[:num]).clamp(0, 1)


def matched_noise(reference: torch.Tensor, num: int, random_state: int) -> torch.Tensor:
    """Gaussian noise with the per-pixel mean and spread of ``reference``, clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(random_state)
    mean, std = reference.mean(0), reference.std(0)
    noise = torch.randn((num, *reference.shape[1:]), generator=generator)
    return (mean + std * noise).clamp(0, 1)


def load_sets(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    """Labeled train/test images for the classifiers and train/test images of the three data
    sets of the cross-reconstruction table (same shape)."""
    if ctx.data is None:
        x_train, y_train = load_digits_images(split="train")
        x_test, y_test = load_digits_images(split="test")
        similar = _scene_sets(cfg.num_scene_crops, x_test, ctx.seed)
        names = ("digits", "scenes", "noise")
    else:
        root = ctx.data
        x_train, y_train, x_test, y_test = read_images(cfg, ctx, source="mnist")
        x_train, x_test = F.pad(x_train, (2, 2, 2, 2)), F.pad(x_test, (2, 2, 2, 2))  # 32x32
        if _has_cifar100(root):
            similar = {}
            for split, cap in (("train", cfg.max_train), ("test", cfg.max_test)):
                images, _, _ = load_cifar(root, split=split, num_classes=100)
                gray = (images * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, True)
                similar[split] = gray[:cap] if cap else gray
            names = ("mnist", "cifar100", "noise")
        else:
            similar = _scene_sets(len(x_train), x_test, ctx.seed)
            names = ("mnist", "scenes", "noise")
    sets = {
        names[0]: {"train": x_train, "test": x_test},
        names[1]: similar,
        names[2]: {
            "train": matched_noise(x_train, len(x_train), random_state=ctx.seed),
            "test": matched_noise(x_train, len(x_test), random_state=10_000 + ctx.seed),
        },
    }
    return {"train": (x_train, y_train), "test": (x_test, y_test), "sets": sets, "names": names}


def _scene_sets(num_train: int, x_test: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Scene crops of the test images' size: ``num_train`` from the training digits and as many
    as ``x_test`` from the held-out ones (seeds ``seed`` and ``10_000 + seed``)."""
    size = x_test.shape[-1]
    return {
        "train": scene_crops(num_train, size, "train", random_state=seed),
        "test": scene_crops(len(x_test), size, "test", random_state=10_000 + seed),
    }


def _has_cifar100(root: Path) -> bool:
    return any((folder / "train").is_file() for folder in (root, root / "cifar-100-python"))


# --- training ------------------------------------------------------------------------------------


def reconstruction_step(model: nn.Module, batch: Any) -> torch.Tensor:
    return F.mse_loss(model(batch[0]), batch[0])


def reconstruction_eval(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
    return {"mse": (model(batch[0]) - batch[0]).square().flatten(1).mean(1)}


def train_autoencoder(cfg: Config, images: torch.Tensor, seed: int, desc: str) -> Autoencoder:
    engine.seed_everything(seed)
    model = Autoencoder(tuple(images.shape[1:]), cfg.latent_dim, channels=cfg.channels)
    loader = engine.make_loader(images, batch_size=cfg.batch_size, shuffle=True, random_state=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.ae_lr)
    engine.fit(
        model,
        loader,
        optimizer,
        epochs=cfg.ae_epochs,
        step_fn=reconstruction_step,
        desc=desc,
    )
    return engine.unwrap(model)


def classifiers(autoencoder: Autoencoder, num_classes: int) -> tuple[nn.Sequential, nn.Sequential]:
    """``(scratch, pretrained)``: the encoder architecture plus a linear head; the pretrained
    copy holds the trained autoencoder's encoder weights, the scratch one a fresh
    initialisation, and both the same head."""
    fresh = Autoencoder(
        autoencoder.in_shape, autoencoder.latent_dim, channels=_channels(autoencoder)
    )
    scratch = nn.Sequential(
        fresh.encoder, nn.ReLU(), nn.Linear(autoencoder.latent_dim, num_classes)
    )
    pretrained = copy.deepcopy(scratch)
    pretrained[0].load_state_dict(autoencoder.encoder.state_dict())
    return scratch, pretrained


def _channels(autoencoder: Autoencoder) -> tuple[int, ...]:
    return tuple(m.out_channels for m in autoencoder.encoder if isinstance(m, nn.Conv2d))


def train_classifier(
    cfg: Config,
    model: nn.Module,
    data: tuple[torch.Tensor, ...],
    seed: int,
    desc: str,
    augmenter: Autoencoder | None = None,
) -> list[float]:
    """Train on the labeled images; return the test accuracy after every epoch."""
    x_labeled, y_labeled, x_test, y_test = data
    loader = engine.make_loader(
        x_labeled, y_labeled, batch_size=cfg.clf_batch_size, shuffle=True, random_state=seed
    )
    step_fn = None
    if augmenter is not None:
        spread = _code_spread(augmenter, x_labeled)

        def step_fn(model, batch):
            x, y = batch
            replace = torch.rand(len(x), device=x.device) < cfg.aug_share
            with torch.no_grad():
                code = augmenter.encode(x)
                noisy = augmenter.decode(code + cfg.aug_noise * spread * torch.randn_like(code))
            x = torch.where(replace[:, None, None, None], noisy, x)
            return engine.classification_step(model, [x, y])

    engine.seed_everything(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.clf_lr)
    history = engine.fit(
        model,
        loader,
        optimizer,
        epochs=cfg.clf_epochs,
        step_fn=step_fn,
        val_loader=engine.make_loader(x_test, y_test, batch_size=cfg.eval_batch_size),
        desc=desc,
    )
    return history.column("val_accuracy")


def _code_spread(autoencoder: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return autoencoder.encode(images.to(next(autoencoder.parameters()).device)).std(0)


def epochs_to_reach(curve: list[float], target: float) -> int:
    """First epoch (from 1) whose accuracy reaches ``target``; ``len(curve) + 1`` if none."""
    for epoch, value in enumerate(curve, start=1):
        if value >= target - 1e-9:
            return epoch
    return len(curve) + 1


# --- the experiment ------------------------------------------------------------------------------


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    data = load_sets(cfg, ctx)
    sets, names = data["sets"], data["names"]
    metrics: dict[str, Any] = {}

    # (b) cross-data-set reconstruction: one autoencoder per data set, evaluated on every set
    autoencoders = {
        name: train_autoencoder(cfg, sets[name]["train"], ctx.seed, f"AE {name}") for name in names
    }
    table = np.zeros((3, 3))
    relative = np.zeros((3, 3))
    for i, trained_on in enumerate(names):
        for j, evaluated_on in enumerate(names):
            images = sets[evaluated_on]["test"]
            loader = engine.make_loader(images, batch_size=cfg.eval_batch_size)
            mse = engine.evaluate(autoencoders[trained_on], loader, eval_fn=reconstruction_eval)
            table[i, j] = mse["mse"]
            # 1 - R^2: the error as a share of the data's own pixel variance
            relative[i, j] = table[i, j] / float((images - images.mean(0)).square().mean())
            metrics[f"mse_{trained_on}_on_{evaluated_on}"] = table[i, j]
    metrics["mse_similar"] = (table[0, 1] + table[1, 0]) / 2
    metrics["mse_dissimilar"] = (table[0, 2] + table[1, 2]) / 2
    metrics["relative_error_similar"] = (relative[0, 1] + relative[1, 0]) / 2
    metrics["relative_error_dissimilar"] = (relative[0, 2] + relative[1, 2]) / 2
    metrics["mse_table"] = table.tolist()
    metrics["relative_error_table"] = relative.tolist()

    # (a) pretraining: the digits autoencoder's encoder vs the same classifier from scratch
    x_train, y_train = data["train"]
    labeled = torch.from_numpy(
        labeled_split(
            y_train, cfg.labeled_per_class, random_state=ctx.seed, setting="labeled_per_class"
        )
    )
    clf_data = (x_train[labeled], y_train[labeled], *data["test"])
    num_classes = int(y_train.max()) + 1
    autoencoder = autoencoders[names[0]]
    engine.seed_everything(ctx.seed)
    scratch, pretrained = classifiers(autoencoder, num_classes)
    pretrained_state = copy.deepcopy(pretrained[0].state_dict())
    for key, value in autoencoder.encoder.state_dict().items():  # the right checkpoint
        if not torch.equal(pretrained_state[key], value.cpu()):
            raise RuntimeError(f"pretrained encoder does not hold the autoencoder's {key}")
    without_pretraining = copy.deepcopy(scratch)
    curves = {
        "scratch": train_classifier(cfg, scratch, clf_data, ctx.seed, "scratch"),
        "pretrained": train_classifier(cfg, pretrained, clf_data, ctx.seed, "pretrained"),
        # (c) the scratch classifier with autoencoder-noise augmentation
        "augmented": train_classifier(
            cfg, without_pretraining, clf_data, ctx.seed, "AE-augmented", augmenter=autoencoder
        ),
    }
    window = max(1, min(cfg.final_window, cfg.clf_epochs))
    target = float(np.mean(curves["scratch"][-window:]))
    for name, curve in curves.items():
        metrics[f"accuracy_curve_{name}"] = curve
        metrics[f"final_accuracy_{name}"] = float(np.mean(curve[-window:]))
        metrics[f"epochs_to_target_{name}"] = epochs_to_reach(curve, target)
    metrics["augmentation_gain"] = (
        metrics["final_accuracy_augmented"] - metrics["final_accuracy_scratch"]
    )
    metrics["accuracy_logreg"] = logistic_regression_accuracy(*clf_data)

    if ctx.first_seed:
        plot_reconstructions(ctx, autoencoders, sets, names)
        plot_augmentations(ctx, cfg, autoencoder, clf_data[0])
    return metrics


def _set_names(metrics: dict[str, Any]) -> list[str]:
    """The three data sets of a run's cross table, in its order (from ``mse_<a>_on_noise``)."""
    return [key[4 : -len("_on_noise")] for key in metrics if re.fullmatch(r"mse_.+_on_noise", key)]


# --- figures -------------------------------------------------------------------------------------


def plot_reconstructions(ctx: RunContext, autoencoders, sets, names) -> None:
    count = min(6, *(len(sets[name]["test"]) for name in names))  # a set may have fewer
    fig, axes = plt.subplots(4, 3 * count, figsize=(1.0 * 3 * count, 4.4), squeeze=False)
    for block, evaluated_on in enumerate(names):
        images = sets[evaluated_on]["test"][:count]
        rows = [images] + [
            engine.predict(autoencoders[name], engine.make_loader(images, batch_size=count))
            for name in names
        ]
        for r, row in enumerate(rows):
            for c in range(count):
                ax = axes[r, block * count + c]
                show_image(ax, row[c])
                if c == 0 and block == 0:
                    ax.set_ylabel("input" if r == 0 else f"AE {names[r - 1]}", fontsize=8)
            axes[0, block * count].set_title(f"{evaluated_on} images", fontsize=9, loc="left")
    ctx.savefig(
        fig,
        "reconstructions",
        f"seed {ctx.seed}: held-out images of each data set (top) and their reconstructions by "
        "the autoencoder trained on each data set",
    )


def plot_augmentations(ctx: RunContext, cfg: Config, autoencoder, images) -> None:
    images = images[:8]
    spread = _code_spread(autoencoder, images)
    torch.manual_seed(ctx.seed)
    with torch.no_grad():
        code = autoencoder.encode(images)
        rows = [images, autoencoder.decode(code)] + [
            autoencoder.decode(code + cfg.aug_noise * spread * torch.randn_like(code))
            for _ in range(3)
        ]
    fig, axes = plt.subplots(
        len(rows), len(images), figsize=(len(images), len(rows)), squeeze=False
    )
    labels = ["input", "reconstruction", "noisy code", "noisy code", "noisy code"]
    for r, row in enumerate(rows):
        for c in range(len(images)):
            show_image(axes[r, c], row[c])
        axes[r, 0].set_ylabel(labels[r], fontsize=7)
    ctx.savefig(
        fig,
        "ae-augmentation",
        f"seed {ctx.seed}: labeled images, their reconstructions, and decoded codes with noise "
        f"of {cfg.aug_noise} x each code dimension's spread (the augmentation of part c)",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, name in enumerate(("scratch", "pretrained", "augmented")):
        curves = np.array([r[f"accuracy_curve_{name}"] for r in results])
        epochs = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(0)
        ax.plot(epochs, mean, "-o", ms=3, color=f"C{i}", label=name)
        if len(curves) > 1:
            low, high = np.percentile(curves, [10, 90], axis=0)
            ax.fill_between(epochs, low, high, color=f"C{i}", alpha=0.15)
    target = summary["final_accuracy_scratch"].mean
    ax.axhline(target, color="0.4", ls="--", lw=1, label="scratch final accuracy")
    logreg = summary["accuracy_logreg"].mean
    ax.axhline(logreg, color="C3", ls=":", lw=1.5, label="logistic regression, same labels")
    ax.set(xlabel="epoch", ylabel="test accuracy", title="classifier from scratch vs pretrained")
    ax.legend(fontsize=8)
    ctx.savefig(
        fig,
        "pretraining-curves",
        "test accuracy per epoch (mean over seeds, band: 10-90% of seeds) of the classifier "
        "from scratch, with the autoencoder-pretrained encoder, and from scratch with "
        "autoencoder-noise augmentation",
    )
    for key, title in (("mse_table", "MSE"), ("relative_error_table", "MSE / pixel variance")):
        table = np.mean([r[key] for r in results], axis=0)
        names = _set_names(results[0])
        fig, ax = plt.subplots(figsize=(4.6, 4))
        ax.imshow(table, cmap="viridis")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{table[i, j]:.3g}", ha="center", va="center", color="w")
        ax.set(
            xticks=range(3),
            xticklabels=names,
            yticks=range(3),
            yticklabels=names,
            xlabel="reconstructed data set",
            ylabel="trained on",
            title=f"reconstruction {title}",
        )
        ctx.savefig(
            fig,
            f"cross-reconstruction-{'mse' if key == 'mse_table' else 'relative'}",
            f"reconstruction {title} of held-out images (columns) by autoencoders trained on "
            "each data set (rows), mean over seeds",
        )
    return {}
