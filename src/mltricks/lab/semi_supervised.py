"""Semi-supervised training in the lab: ``engine.fit`` around the core's step, diagnostics, figures.

The lab-only pieces shared by the ``unsupervised-support`` and ``consistency-regularization``
experiments; the technique itself is in the core (``mltricks.semi_supervised.SemiSupervisedStep``
on batches of ``mltricks.data.semi_supervised_loader``, augmented by
``mltricks.data.augmentation``). There is no training loop here.

- ``UnlabeledDiagnostics``: an ``engine.fit`` callback adding, per epoch, the mean prediction
  entropy on the unlabeled set and the share of it predicted as each class (a collapse to one
  class shows as ``unlabeled_top_share`` near 1).
- ``fit_semi_supervised``: ``engine.fit`` with Adam, cosine learning-rate annealing, the step and
  the diagnostics callback.
- ``choose_on_validation``: the model selection rule (validation accuracy, then NLL).
- ``image_split``: labeled / validation / unlabeled / test images (the digits, or the data
  folder given with ``--data``) for one seed; ``ImageSplit.loader`` its training batches,
  ``ImageSplit.evaluate`` a model's validation or test scores and
  ``ImageSplit.logistic_regression_accuracy`` the baseline with its labels.
- ``curves`` and ``diagnostics_figure``: the per-epoch diagnostics as lists and as a figure.
- ``SemiSupervisedTraining``: the settings both experiments share (the same network,
  ``SemiSupervisedTraining.network``, batches, augmentation and budget, so that they compare
  losses and nothing else; the budget in epochs, or in optimizer steps with ``steps``, as with
  ``--data`` where 100 labels make an epoch a few steps), ``FULL_BUDGET`` their full presets'
  budget on the digits, ``run_split`` a run's ``image_split`` and ``train_from`` one training
  from given initial weights (its BatchNorm statistics recomputed on the labeled images after
  training with ``recalibrate_bn``, the default with ``--data``).

Longer than the lab's 400 lines: the pieces above are the one semi-supervised training both
experiments share, kept together so that they compare losses and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator
from torch import nn
from torch.utils.data import DataLoader

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks.data import augmentation, semi_supervised_loader, split_labeled
from mltricks.lab import engine
from mltricks.lab.baselines import logistic_regression_accuracy
from mltricks.lab.config import DataSubset
from mltricks.lab.config_fields import within
from mltricks.lab.data_sources import train_test_images
from mltricks.lab.splits import labeled_split
from mltricks.lab.training import BatchNormRecalibration, recalibrate_batch_norm
from mltricks.models import SmallCNN
from mltricks.semi_supervised import SemiSupervisedStep

__all__ = [
    "FULL_BUDGET",
    "ImageSplit",
    "SemiSupervisedTraining",
    "UnlabeledDiagnostics",
    "choose_on_validation",
    "curves",
    "diagnostics_figure",
    "fit_semi_supervised",
    "image_split",
    "run_split",
    "train_from",
]


class UnlabeledDiagnostics:
    """``engine.fit`` callback: per-epoch prediction entropy and class shares on unlabeled data.

    Adds to each epoch's row ``unlabeled_entropy`` (mean entropy of the softmax, nats),
    ``unlabeled_top_share`` (share of the most-predicted class: 1 when training collapsed to one
    class, about ``1 / num_classes`` for balanced data) and ``unlabeled_share_<k>`` for every
    class; ``shares`` keeps the per-epoch lists for figures. Predictions are made in eval mode.
    """

    def __init__(
        self,
        model: nn.Module,
        unlabeled_x: torch.Tensor,
        *,
        num_classes: int,
        batch_size: int = 512,
    ) -> None:
        check_number("num_classes", num_classes, low=2, integer=True)
        if len(unlabeled_x) == 0:
            raise ValueError("unlabeled_x must hold at least one sample; got an empty set")
        self.model = model
        self.num_classes = num_classes
        self.loader = engine.make_loader(unlabeled_x, batch_size=batch_size)
        self.shares: list[list[float]] = []
        self.entropies: list[float] = []

    def __call__(self, epoch: int, row: dict[str, float]) -> bool:
        probabilities = engine.predict(self.model, self.loader).detach().float().softmax(dim=1)
        entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1).mean()
        counts = torch.bincount(probabilities.argmax(dim=1), minlength=self.num_classes)
        shares = (counts.float() / len(probabilities)).tolist()
        self.shares.append(shares)
        self.entropies.append(float(entropy))
        row["unlabeled_entropy"] = float(entropy)
        row["unlabeled_top_share"] = max(shares)
        row.update({f"unlabeled_share_{k}": share for k, share in enumerate(shares)})
        return False


def fit_semi_supervised(
    model: nn.Module,
    loader: DataLoader,
    step: SemiSupervisedStep,
    unlabeled_x: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    max_steps: int | None = None,
    weight_decay: float = 0.0,
    cosine: bool = True,
    val_loader: DataLoader | None = None,
    desc: str = "semi-supervised",
) -> tuple[engine.History, UnlabeledDiagnostics]:
    """``engine.fit`` with Adam, ``step`` and the unlabeled diagnostics; returns both records.

    Training stops after ``epochs`` passes over ``loader`` or ``max_steps`` optimizer steps,
    whichever comes first. ``cosine`` anneals the learning rate to 0 over those steps (stepped
    per batch), so the final model, the one evaluated, does not depend on where the last noisy
    steps happened to land.
    """
    check_number("lr", lr, low=0.0, low_inclusive=False)
    check_number("epochs", epochs, low=1, integer=True)
    if max_steps is not None:
        check_number("max_steps", max_steps, low=1, integer=True)
    diagnostics = UnlabeledDiagnostics(model, unlabeled_x, num_classes=step.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = None
    if cosine:
        total = max(1, epochs * len(loader))
        if max_steps is not None:
            total = min(total, max_steps)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    history = engine.fit(
        model,
        loader,
        optimizer,
        epochs=epochs,
        max_steps=max_steps,
        step_fn=step,
        val_loader=val_loader,
        scheduler=scheduler,
        callbacks=[diagnostics],
        desc=desc,
    )
    return history, diagnostics


def choose_on_validation(scores: Sequence[Mapping[str, float]]) -> int:
    """Index of the best candidate by validation accuracy, ties broken by lower validation NLL.

    ``scores[i]`` holds ``val_accuracy`` and ``val_nll`` (other entries, such as test metrics,
    are never read: the test split must not choose anything).
    """
    if not scores:
        raise ValueError("scores must hold at least one candidate; got none")
    return max(range(len(scores)), key=lambda i: (scores[i]["val_accuracy"], -scores[i]["val_nll"]))


@dataclass
class ImageSplit:
    """Images for one semi-supervised run: labeled training samples, a validation split carved
    from the labeled samples, the unlabeled rest of the training split (``unlabeled_y`` only for
    diagnostics, never for training) and the test split."""

    labeled_x: torch.Tensor
    labeled_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    unlabeled_x: torch.Tensor
    unlabeled_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def loader(self, *, batch_size: int, unlabeled_ratio: int, random_state: int) -> DataLoader:
        """The training batches: ``semi_supervised_loader`` of the labeled and unlabeled images."""
        return semi_supervised_loader(
            self.labeled_x,
            self.labeled_y,
            self.unlabeled_x,
            batch_size=batch_size,
            unlabeled_ratio=unlabeled_ratio,
            num_classes=10,
            random_state=random_state,
        )

    def evaluate(self, model: nn.Module, part: str = "test") -> dict[str, float]:
        """``engine.evaluate`` of ``model`` (mean ``loss`` and ``accuracy``) on the validation
        (``"val"``) or test (``"test"``) images."""
        check_choice("part", part, ("val", "test"))
        x, y = (self.val_x, self.val_y) if part == "val" else (self.test_x, self.test_y)
        return engine.evaluate(model, engine.make_loader(x, y, batch_size=512))

    def logistic_regression_accuracy(self) -> float:
        """Test accuracy of logistic regression with the split's label budget: every labeled
        image, the validation ones included (it chooses nothing on them). The strong simple
        baseline of the networks trained on the split."""
        return logistic_regression_accuracy(
            torch.cat([self.labeled_x, self.val_x]),
            torch.cat([self.labeled_y, self.val_y]),
            self.test_x,
            self.test_y,
        )


@renamed_argument("seed", "random_state")
def image_split(
    data: Path | None,
    labeled: int | float,
    *,
    random_state: int,
    val_fraction: float = 0.0,
    num_unlabeled: int | None = None,
    max_train: int = 0,
    max_test: int = 0,
    subset_random_state: int | None = None,
    labeled_setting: str = "labeled",
) -> ImageSplit:
    """Split a training split into labeled / validation / unlabeled samples; keep its test split.

    The images are the digits' fixed split when ``data`` is None, else the data folder ``data``
    (``data_sources.train_test_images``: MNIST format or the CIFAR-10 batches), of which at most
    ``max_train`` training and ``max_test`` test images are read (a subset drawn by
    ``subset_random_state``; 0 reads all).

    Args:
        data: None (the digits) or the folder ``--data`` names.
        labeled: labeled samples per class (int) or labeled share of each class (float), chosen
            by ``split_labeled`` with ``random_state``.
        random_state: seed of every choice (of the subsets too, by default). ``seed=`` is its
            deprecated name (deprecated in 0.2.0, removed in 0.3.0).
        val_fraction: share of each class's labeled samples held out for validation (0: none;
            at least one per class otherwise). Validation samples are not in the unlabeled set.
        num_unlabeled: keep only this many unlabeled samples (None: all of the rest).
        max_train, max_test: caps on the images read from ``data`` (ignored for the digits).
        subset_random_state: seed of the capped subsets (None: ``random_state``).
        labeled_setting: the config setting ``labeled`` comes from, named when the training
            split has fewer images of a class than that.

    Returns:
        The ``ImageSplit``: images ``(N, C, H, W)`` in [0, 1] and int64 labels ``(N,)``.

    Example:
        >>> split = image_split(None, 10, random_state=0, num_unlabeled=100)
        >>> len(split.labeled_y), len(split.unlabeled_y), len(split.test_y)
        (100, 100, 360)
    """
    check_number("val_fraction", val_fraction, low=0.0, high=1.0, high_inclusive=False)
    subsets = random_state if subset_random_state is None else subset_random_state
    images, labels, test_x, test_y = train_test_images(
        data, max_train=max_train, max_test=max_test, random_state=subsets
    )
    labeled_mask = torch.from_numpy(
        labeled_split(labels, labeled, random_state=random_state, setting=labeled_setting)
    )
    labeled_idx = labeled_mask.nonzero().squeeze(1)
    unlabeled_idx = (~labeled_mask).nonzero().squeeze(1)
    if num_unlabeled is not None:
        check_number("num_unlabeled", num_unlabeled, low=1, integer=True)
        generator = torch.Generator().manual_seed(random_state)
        order = torch.randperm(len(unlabeled_idx), generator=generator)
        unlabeled_idx = unlabeled_idx[order[:num_unlabeled]]
    val_idx = labeled_idx[:0]
    if val_fraction > 0:
        val_mask = torch.from_numpy(
            split_labeled(labels[labeled_idx], float(val_fraction), random_state=random_state + 1)
        )
        if bool(val_mask.all()):
            raise ValueError(
                f"val_fraction={val_fraction} leaves no labeled training sample with "
                f"labeled={labeled}; label more samples or hold out fewer"
            )
        val_idx, labeled_idx = labeled_idx[val_mask], labeled_idx[~val_mask]
    return ImageSplit(
        images[labeled_idx],
        labels[labeled_idx],
        images[val_idx],
        labels[val_idx],
        images[unlabeled_idx],
        labels[unlabeled_idx],
        test_x,
        test_y,
    )


def curves(history: engine.History) -> dict[str, list[float]]:
    """The per-epoch diagnostics of a ``fit_semi_supervised`` history, as plain lists."""
    names = ("train_sup_loss", "train_unsup_loss", "unlabeled_entropy", "unlabeled_top_share")
    return {name: history.column(name) for name in names}


def diagnostics_figure(runs: Mapping[str, Mapping[str, list[float]]], title: str = "") -> Any:
    """Four panels over epochs, one line per run: supervised loss, unsupervised loss (weighted,
    before the ramp), prediction entropy on unlabeled data and the most-predicted class's share."""
    panels = (
        ("train_sup_loss", "supervised CE (labeled)"),
        ("train_unsup_loss", "unsupervised loss (weighted)"),
        ("unlabeled_entropy", "mean prediction entropy, unlabeled (nats)"),
        ("unlabeled_top_share", "share of the most-predicted class, unlabeled"),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, (key, label) in zip(axes.flat, panels):
        # one colour per run in every panel, also where a run has no such curve
        for index, (name, values) in enumerate(runs.items()):
            series = values.get(key) or []
            if series:
                epochs = range(1, len(series) + 1)
                ax.plot(epochs, series, "-o", ms=2, color=f"C{index % 10}", label=name)
        ax.set(title=label, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.flat[3].axhline(1.0, color="k", lw=0.5, ls=":")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@dataclass
class SemiSupervisedTraining(BatchNormRecalibration, DataSubset):
    """The settings of the two semi-supervised image experiments (unsupervised-support and
    consistency-regularization): a ``SmallCNN`` trained with ``fit_semi_supervised`` on
    labeled batches plus ``unlabeled_ratio`` unlabeled samples per labeled one, augmented by
    ``mltricks.data.augmentation(degrees, translate, noise)``, the unsupervised term ramped up
    over ``rampup_epochs`` passes.

    The budget is ``epochs`` passes over the unlabeled set, or ``steps`` optimizer steps when
    given (the passes they need, the last one cut short); the learning rate anneals to 0 at the
    end either way, so a budget is a training of its own, not a prefix of a longer one."""

    num_unlabeled: int | None = 320  # None: every other training image
    epochs: int = 10  # passes over the unlabeled set (or the labeled set, when larger)
    steps: int | None = None  # optimizer steps in all, over epochs when given
    rampup_epochs: int = field(default=3, metadata=within(0))  # 0: no ramp
    batch_size: int = 16  # labeled samples per batch
    unlabeled_ratio: int = 2  # unlabeled samples per labeled sample in a batch
    lr: float = 3e-3
    width: int = 16
    dropout: float = 0.1
    degrees: float = 10.0
    translate: float = 0.125
    noise: float = 0.05

    def network(self, in_channels: int) -> SmallCNN:
        """A fresh ``SmallCNN`` of these settings for 10 classes: the network every training of
        both experiments starts from (its initial weights drawn from the global generator)."""
        return SmallCNN(in_channels, 10, width=self.width, dropout=self.dropout)


# both full presets on the digits: 640 of the digits' 1,337 unlabeled images keep them within
# minutes on 2 cores; at 15 epochs and 512 unlabeled images the networks were still undertrained
# (unlabeled entropy ~0.7 nats). With --data each experiment's DATA_CONFIG sets steps instead
FULL_BUDGET = {"epochs": 20, "rampup_epochs": 6, "num_unlabeled": 640}
# unlabeled images the per-epoch diagnostics predict (all of them up to this number)
_DIAGNOSTIC_SAMPLES = 1000


def run_split(
    cfg: SemiSupervisedTraining,
    ctx: Any,
    setting: str,
    labeled: int | float | None = None,
    *,
    val_fraction: float = 0.0,
) -> ImageSplit:
    """The ``image_split`` of a run: ``ctx.data`` (the digits when None), its images capped and
    drawn as ``cfg`` says, every choice by ``ctx.seed``; ``labeled`` images of each class (the
    config ``setting``'s value when None)."""
    return image_split(
        ctx.data,
        getattr(cfg, setting) if labeled is None else labeled,
        labeled_setting=setting,
        random_state=ctx.seed,
        val_fraction=val_fraction,
        num_unlabeled=cfg.num_unlabeled,
        max_train=cfg.max_train,
        max_test=cfg.max_test,
        subset_random_state=cfg.subset_random_state(ctx.seed),
    )


def train_from(
    cfg: SemiSupervisedTraining,
    data: ImageSplit,
    initial: Mapping[str, torch.Tensor],
    *,
    random_state: int,
    desc: str,
    stability: float = 0.0,
    exclusivity: float = 0.0,
    consistency: float = 0.0,
    num_views: int = 2,
    detach_target: bool = False,
) -> tuple[nn.Module, engine.History, UnlabeledDiagnostics]:
    """One ``SmallCNN`` trained from the weights ``initial`` with the given loss weights (those
    of ``SemiSupervisedStep``), after seeding with ``random_state``: every training of a seed
    then sees the same batch order and random draws, so that only the losses differ.

    Returns:
        the trained model, its history and its unlabeled diagnostics.
    """
    engine.seed_everything(random_state)
    loader = data.loader(
        batch_size=cfg.batch_size, unlabeled_ratio=cfg.unlabeled_ratio, random_state=random_state
    )
    model = cfg.network(data.labeled_x.shape[1])
    model.load_state_dict(initial)
    step = SemiSupervisedStep(
        num_classes=10,
        stability=stability,
        exclusivity=exclusivity,
        consistency=consistency,
        num_views=num_views,
        rampup_steps=cfg.rampup_epochs * len(loader),
        augment=augmentation(cfg.degrees, cfg.translate, cfg.noise),
        detach_target=detach_target,
    )
    epochs, max_steps = cfg.epochs, cfg.steps
    if max_steps is not None:  # as many passes as the steps need; the last one may be cut
        epochs = math.ceil(max_steps / len(loader))
    history, diagnostics = fit_semi_supervised(
        model,
        loader,
        step,
        # a fixed share of the (shuffled) unlabeled set: the diagnostics of a large one would
        # cost as much as the training
        data.unlabeled_x[:_DIAGNOSTIC_SAMPLES],
        epochs=epochs,
        max_steps=max_steps,
        lr=cfg.lr,
        desc=desc,
    )
    if cfg.recalibrate_bn:  # on the labeled images: those every variant trained on
        recalibrate_batch_norm(model, data.labeled_x)
    return model, history, diagnostics
