"""Semi-supervised training in the lab: loader, augmentation, step and diagnostics for ``engine.fit``.

The pieces shared by the ``unsupervised-support`` and ``consistency-regularization`` experiments.
They compose ``engine.fit``; there is no training loop here.

- ``semi_supervised_loader``: every batch holds ``B`` labeled samples and ``B * unlabeled_ratio``
  unlabeled ones. An epoch is one pass over the unlabeled set; labeled samples are cycled.
- ``augmentation``: random small rotations and integer pixel shifts (``RandomShiftRotate``, the
  geometry of ``torchvision.transforms.v2.functional.affine``, drawn per sample for a whole batch
  in one call) followed by ``torchvision.transforms.v2.GaussianNoise``, in a ``v2.Compose``.
- ``SemiSupervisedStep``: cross-entropy on the labeled samples plus
  ``ramp(t) * (w_stability * stability + w_exclusivity * exclusivity + w_consistency *
  consistency)`` on the unlabeled ones, with the sigmoid-shaped ramp-up
  ``exp(-5 (1 - t)^2)`` of Laine and Aila (2017) over ``rampup_steps`` optimizer steps.
- ``UnlabeledDiagnostics``: an ``engine.fit`` callback adding, per epoch, the mean prediction
  entropy on the unlabeled set and the share of it predicted as each class (a collapse to one
  class shows as ``unlabeled_top_share`` near 1).
- ``fit_semi_supervised``: ``engine.fit`` with Adam, cosine learning-rate annealing, the step and
  the diagnostics callback.

BatchNorm: the labeled images, the clean unlabeled images (when consistency is on) and every
augmented view of the unlabeled images go through the model in **one forward pass**, in train
mode. Each BatchNorm layer therefore normalises with statistics of one batch that mixes labeled
and unlabeled samples, the same batch for every branch, so the supervised and unsupervised
predictions are computed under the same normalisation and the running statistics used at test
time describe the whole training distribution rather than the few labeled samples. Through the
batch statistics the unlabeled images also shape the supervised term a little. When every
unsupervised weight is 0 (the supervised baseline) only the labeled samples are forwarded, so the
baseline is plain supervised training on the same labeled batches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from smallml._utils.checks import check_number
from smallml.data import load_digits_images, split_labeled
from smallml.lab import engine
from smallml.semi_supervised import consistency_loss, mutual_exclusivity_loss, stability_loss


class LabeledUnlabeledDataset(Dataset):
    """Items ``(x_labeled, y_labeled, x_unlabeled)`` with ``unlabeled_ratio`` unlabeled images each.

    Item ``k`` pairs labeled sample ``k mod N_l`` with the unlabeled samples
    ``perm[(k * r + j) mod N_u]``, ``j < r``, for a permutation ``perm`` fixed by ``seed``. The
    dataset has ``max(N_l, ceil(N_u / r))`` items, so one pass sees every unlabeled sample (and
    every labeled one) at least once. A shuffling loader mixes the items into batches (the ``r``
    unlabeled samples of one item stay together, which only matters through BatchNorm).
    """

    def __init__(
        self,
        labeled_x: torch.Tensor,
        labeled_y: torch.Tensor,
        unlabeled_x: torch.Tensor,
        *,
        unlabeled_ratio: int = 1,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        check_number("unlabeled_ratio", unlabeled_ratio, low=1, integer=True)
        for name, value in (("labeled_x", labeled_x), ("unlabeled_x", unlabeled_x)):
            if not isinstance(value, torch.Tensor) or value.dim() < 2:
                raise ValueError(f"{name} must be a tensor (N, ...) of samples; got {value!r:.80}")
        if len(labeled_x) == 0:
            raise ValueError("labeled_x must hold at least one labeled sample; got 0")
        if len(unlabeled_x) == 0:
            raise ValueError(
                "unlabeled_x must hold at least one sample: semi-supervised training needs "
                "unlabeled data; got an empty unlabeled set"
            )
        if labeled_x.shape[1:] != unlabeled_x.shape[1:]:
            raise ValueError(
                "unlabeled_x samples must have the shape of labeled_x samples; got "
                f"{tuple(unlabeled_x.shape[1:])} and {tuple(labeled_x.shape[1:])}"
            )
        labeled_y = torch.as_tensor(labeled_y)
        if labeled_y.shape != (len(labeled_x),) or labeled_y.is_floating_point():
            raise ValueError(
                f"labeled_y must be integer class labels of shape ({len(labeled_x)},); got "
                f"{labeled_y.dtype} of shape {tuple(labeled_y.shape)}"
            )
        check_labels(labeled_y, num_classes, "labeled_y")
        self.labeled_x, self.labeled_y, self.unlabeled_x = labeled_x, labeled_y.long(), unlabeled_x
        self.unlabeled_ratio = int(unlabeled_ratio)
        generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(unlabeled_x), generator=generator)
        self.offsets = torch.arange(self.unlabeled_ratio)

    def __len__(self) -> int:
        num_blocks = math.ceil(len(self.unlabeled_x) / self.unlabeled_ratio)
        return max(len(self.labeled_x), num_blocks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labeled = index % len(self.labeled_x)
        block = (index * self.unlabeled_ratio + self.offsets) % len(self.unlabeled_x)
        return self.labeled_x[labeled], self.labeled_y[labeled], self.unlabeled_x[self.order[block]]


def check_labels(labels: torch.Tensor, num_classes: int | None, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless every label lies in ``0..num_classes-1``."""
    if num_classes is None or labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name} must hold class labels in 0..{num_classes - 1}; got values from {low} to "
            f"{high} (unlabeled samples belong in the unlabeled set, not as -1 labels)"
        )


def semi_supervised_loader(
    labeled_x: torch.Tensor,
    labeled_y: torch.Tensor,
    unlabeled_x: torch.Tensor,
    *,
    batch_size: int,
    unlabeled_ratio: int = 1,
    num_classes: int | None = None,
    seed: int = 0,
) -> DataLoader:
    """A shuffling loader of ``(x_l (B, ...), y_l (B,), x_u (B, r, ...))`` batches.

    ``batch_size`` counts labeled samples; each batch also holds ``batch_size * unlabeled_ratio``
    unlabeled samples. The last incomplete batch is dropped when there is at least one full batch.
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    dataset = LabeledUnlabeledDataset(
        labeled_x,
        labeled_y,
        unlabeled_x,
        unlabeled_ratio=unlabeled_ratio,
        num_classes=num_classes,
        seed=seed,
    )
    return engine.make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        drop_last=len(dataset) >= batch_size,
    )


class RandomShiftRotate(nn.Module):
    """A random rotation in ``[-degrees, degrees]`` and a random integer shift, per sample.

    The geometry is ``torchvision.transforms.v2.functional.affine`` (bilinear, zero fill, centre
    of rotation at the image centre), with the parameters ``v2.RandomAffine`` would draw, but a
    batch ``(B, C, H, W)`` gets ``B`` independent draws in one ``grid_sample`` call, where
    ``v2.RandomAffine`` applies one draw to the whole batch. Draws use the global torch generator.

    Args:
        degrees: largest absolute rotation angle.
        translate: largest shift as a share of the width and height (rounded to whole pixels).
    """

    def __init__(self, degrees: float = 10.0, translate: float = 0.125) -> None:
        super().__init__()
        check_number("degrees", degrees, low=0.0, high=180.0)
        check_number("translate", translate, low=0.0, high=1.0)
        self.degrees, self.translate = float(degrees), float(translate)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batched = images.dim() == 4
        batch = images if batched else images.unsqueeze(0)
        num, height, width = batch.shape[0], batch.shape[-2], batch.shape[-1]
        device, dtype = batch.device, batch.dtype if batch.is_floating_point() else torch.float32
        angles = (torch.rand(num, device=device) * 2 - 1) * self.degrees
        limits = torch.tensor([self.translate * width, self.translate * height], device=device)
        shifts = torch.round((torch.rand(num, 2, device=device) * 2 - 1) * limits)
        out = affine_batch(batch.to(dtype), angles.to(dtype), shifts.to(dtype))
        return out if batched else out.squeeze(0)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, translate={self.translate}"


def affine_batch(images: torch.Tensor, angles: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``v2.functional.affine(images[i], angle=angles[i], translate=shifts[i], scale=1, shear=0,
    interpolation=BILINEAR)`` for every ``i`` of a batch ``(B, C, H, W)``, in one call."""
    height, width = images.shape[-2:]
    radians = torch.deg2rad(angles)
    cos, sin = radians.cos(), radians.sin()
    # torchvision's inverse matrix (output pixel -> input pixel, origin at the image centre)
    tx, ty = shifts[:, 0], shifts[:, 1]
    m02 = -cos * tx - sin * ty
    m12 = sin * tx - cos * ty
    # the same map in grid_sample's normalised coordinates (x / (W/2), y / (H/2))
    theta = torch.stack(
        [
            torch.stack([cos, sin * height / width, m02 * 2 / width], dim=1),
            torch.stack([-sin * width / height, cos, m12 * 2 / height], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augmentation(
    degrees: float = 10.0, translate: float = 0.125, noise: float = 0.05
) -> v2.Compose:
    """Augmentation for small images in [0, 1]: rotation, integer shift, clipped Gaussian noise.

    Args:
        degrees: largest rotation angle.
        translate: largest shift as a share of the image size (1 pixel of 8 for 0.125).
        noise: standard deviation of the additive noise (0 disables it).
    """
    check_number("noise", noise, low=0.0)
    steps: list[Any] = [RandomShiftRotate(degrees, translate)]
    if noise > 0:
        steps.append(v2.GaussianNoise(mean=0.0, sigma=noise, clip=True))
    return v2.Compose(steps)


def _logits(output: Any) -> torch.Tensor:
    """A model's logits: the output itself, or the first element of a tuple output."""
    return output[0] if isinstance(output, tuple | list) else output


def rampup(step: int, rampup_steps: int) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = step / rampup_steps`` clipped to 1 (1 when no ramp-up)."""
    if rampup_steps <= 0:
        return 1.0
    progress = min(step / rampup_steps, 1.0)
    return math.exp(-5.0 * (1.0 - progress) ** 2)


class SemiSupervisedStep:
    """``step_fn`` for ``engine.fit`` on ``semi_supervised_loader`` batches.

    Loss: ``CE(labeled) + ramp * (stability * l_TS + exclusivity * l_ME + consistency * l_C)``.
    ``l_TS`` and ``l_ME`` use ``num_views`` augmented views of every unlabeled sample (``l_ME``
    averaged over views), ``l_C`` the clean unlabeled sample (the target) against its first
    augmented view. Labeled samples are augmented once. See the module docstring for BatchNorm.

    Args:
        num_classes: outputs of the model; labels outside ``0..num_classes-1`` raise.
        stability: weight of the stability loss (needs ``num_views >= 2``).
        exclusivity: weight of the mutual-exclusivity loss.
        consistency: weight of the consistency loss.
        num_views: augmented views per unlabeled sample for stability and exclusivity.
        rampup_steps: optimizer steps over which the weights ramp up (0: full weight at once).
        augment: callable on image batches, ``augmentation()`` by default.
        detach_target: stop gradients through the clean branch of the consistency loss.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        stability: float = 0.0,
        exclusivity: float = 0.0,
        consistency: float = 0.0,
        num_views: int = 2,
        rampup_steps: int = 0,
        augment: Any = None,
        detach_target: bool = False,
    ) -> None:
        check_number("num_classes", num_classes, low=2, integer=True)
        for name, value in (
            ("stability", stability),
            ("exclusivity", exclusivity),
            ("consistency", consistency),
        ):
            check_number(name, value, low=0.0)
        check_number("num_views", num_views, low=1, integer=True)
        if stability > 0 and num_views < 2:
            raise ValueError(
                f"num_views must be >= 2 when the stability loss is on (stability={stability}); "
                f"got {num_views}"
            )
        check_number("rampup_steps", rampup_steps, low=0, integer=True)
        self.num_classes = num_classes
        self.weights = {
            "stability": float(stability),
            "exclusivity": float(exclusivity),
            "consistency": float(consistency),
        }
        self.num_views = num_views
        self.rampup_steps = rampup_steps
        self.augment = augment if augment is not None else augmentation()
        self.detach_target = detach_target
        self.steps_done = 0

    @property
    def unsupervised(self) -> bool:
        """Whether any unsupervised term is on (otherwise unlabeled samples are not forwarded)."""
        return any(weight > 0 for weight in self.weights.values())

    def __call__(
        self, model: nn.Module, batch: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if len(batch) != 3:
            raise ValueError(
                "batch must be (x_labeled, y_labeled, x_unlabeled) from semi_supervised_loader; "
                f"got {len(batch)} tensors"
            )
        labeled_x, labeled_y, unlabeled_x = batch
        check_labels(labeled_y, self.num_classes, "labeled targets (batch[1])")
        ramp = rampup(self.steps_done, self.rampup_steps)
        self.steps_done += 1
        inputs = [self.augment(labeled_x)]
        num_labeled = len(labeled_x)
        unlabeled = unlabeled_x.flatten(0, 1)  # (B * r, ...)
        num_unlabeled = len(unlabeled)
        use_views = self.weights["stability"] > 0 or self.weights["exclusivity"] > 0
        num_views = self.num_views if use_views else 1
        if self.unsupervised:
            if num_unlabeled == 0:
                raise ValueError("x_unlabeled (batch[2]) is empty but an unsupervised weight is on")
            if self.weights["consistency"] > 0:
                inputs.append(unlabeled)  # the clean target branch
            inputs.extend(self.augment(unlabeled) for _ in range(num_views))
        logits = _logits(model(torch.cat(inputs)))  # one forward pass: see BatchNorm
        if logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"num_classes is {self.num_classes} but the model outputs {logits.shape[-1]}"
            )
        supervised = F.cross_entropy(logits[:num_labeled], labeled_y)
        logs = {
            "sup_loss": float(supervised.detach()),
            "accuracy": float((logits[:num_labeled].argmax(1) == labeled_y).float().mean()),
        }
        if not self.unsupervised:
            return supervised, logs
        rest = logits[num_labeled:]
        terms: dict[str, torch.Tensor] = {}
        if self.weights["consistency"] > 0:
            clean, rest = rest[:num_unlabeled], rest[num_unlabeled:]
            terms["consistency"] = consistency_loss(
                clean, rest[:num_unlabeled], detach_target=self.detach_target
            )
        views = rest.reshape(num_views, num_unlabeled, -1)  # (n_views, B * r, C)
        if self.weights["stability"] > 0:
            terms["stability"] = stability_loss(views)
        if self.weights["exclusivity"] > 0:
            terms["exclusivity"] = mutual_exclusivity_loss(views)
        unsupervised = torch.stack([self.weights[n] * value for n, value in terms.items()]).sum()
        loss = supervised + ramp * unsupervised
        logs.update({name: float(value.detach()) for name, value in terms.items()})
        logs.update({"unsup_loss": float(unsupervised.detach()), "ramp": ramp})
        return loss, logs


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
    weight_decay: float = 0.0,
    cosine: bool = True,
    val_loader: DataLoader | None = None,
    desc: str = "semi-supervised",
) -> tuple[engine.History, UnlabeledDiagnostics]:
    """``engine.fit`` with Adam, ``step`` and the unlabeled diagnostics; returns both records.

    ``cosine`` anneals the learning rate to 0 over the run (stepped per batch), so the final
    model, the one evaluated, does not depend on where the last noisy steps happened to land.
    """
    check_number("lr", lr, low=0.0, low_inclusive=False)
    check_number("epochs", epochs, low=1, integer=True)
    diagnostics = UnlabeledDiagnostics(model, unlabeled_x, num_classes=step.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = None
    if cosine:
        total = max(1, epochs * len(loader))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    history = engine.fit(
        model,
        loader,
        optimizer,
        epochs=epochs,
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
class DigitsSplit:
    """Digits for one semi-supervised run: labeled training samples, a validation split carved
    from the labeled samples, the unlabeled rest of the training split (``unlabeled_y`` only for
    diagnostics, never for training) and the fixed test split."""

    labeled_x: torch.Tensor
    labeled_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    unlabeled_x: torch.Tensor
    unlabeled_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def digits_split(
    labeled: int | float,
    *,
    seed: int,
    val_fraction: float = 0.0,
    num_unlabeled: int | None = None,
) -> DigitsSplit:
    """Split the digits' training split into labeled / validation / unlabeled samples.

    Args:
        labeled: labeled samples per class (int) or labeled share of each class (float), chosen
            by ``split_labeled`` with ``random_state=seed``.
        seed: seed of every choice.
        val_fraction: share of each class's labeled samples held out for validation (0: none;
            at least one per class otherwise). Validation samples are not in the unlabeled set.
        num_unlabeled: keep only this many unlabeled samples (None: all of the rest).
    """
    check_number("val_fraction", val_fraction, low=0.0, high=1.0, high_inclusive=False)
    images, labels = load_digits_images(split="train")
    test_x, test_y = load_digits_images(split="test")
    labeled_mask = torch.from_numpy(split_labeled(labels, labeled, random_state=seed))
    labeled_idx = labeled_mask.nonzero().squeeze(1)
    unlabeled_idx = (~labeled_mask).nonzero().squeeze(1)
    if num_unlabeled is not None:
        check_number("num_unlabeled", num_unlabeled, low=1, integer=True)
        order = torch.randperm(len(unlabeled_idx), generator=torch.Generator().manual_seed(seed))
        unlabeled_idx = unlabeled_idx[order[:num_unlabeled]]
    val_idx = labeled_idx[:0]
    if val_fraction > 0:
        val_mask = torch.from_numpy(
            split_labeled(labels[labeled_idx], float(val_fraction), random_state=seed + 1)
        )
        if bool(val_mask.all()):
            raise ValueError(
                f"val_fraction={val_fraction} leaves no labeled training sample with "
                f"labeled={labeled}; label more samples or hold out fewer"
            )
        val_idx, labeled_idx = labeled_idx[val_mask], labeled_idx[~val_mask]
    return DigitsSplit(
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
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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
