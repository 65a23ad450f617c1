"""Recipes the experiments share: data splits, image loading, a small-CNN training helper, the
lr-range-test problem, and error bars and bands from interval estimates.

Experiments import the core, the lab's infrastructure and this module, never each other;
benchmarks import the core and this module, never an experiment. Real data sets plug in here:
``train_test_images(data, source=...)`` reads the bundled digits when ``data`` is None and a
data folder (an MNIST-format IDX folder, the CIFAR-10 python batches) otherwise.

Example:
    >>> x_train, y_train, x_test, y_test = train_test_images(None)
    >>> train, val = validation_split(y_train, 0.2, random_state=0)
    >>> len(train), len(val)
    (1149, 288)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from torch import nn

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.randomness import torch_generator
from mltricks.data import load_cifar, load_digits_images, load_mnist
from mltricks.lab import engine
from mltricks.lab.stats import Estimate, interval_arrays, mean_interval
from mltricks.models import SmallCNN
from mltricks.tuning import OPTIMIZERS

__all__ = [
    "IMAGE_DATA",
    "SOURCES",
    "LRRangeProblem",
    "band",
    "batch_stream",
    "column_estimates",
    "data_source",
    "digit_features",
    "errorbar",
    "for_data",
    "image_features",
    "interval_errors",
    "label_spreading_accuracy",
    "lr_range_problem",
    "percent_tag",
    "show_image",
    "subsample",
    "train_small_cnn",
    "train_test_images",
    "trained_val_losses",
    "validation_split",
]

SOURCES = ("mnist", "cifar10")
# the DATA text of an experiment that reads either source through ``train_test_images``
IMAGE_DATA = "an MNIST-format IDX folder (MNIST, Fashion-MNIST) or the CIFAR-10 python batches"

# --- splits --------------------------------------------------------------------------------------


def validation_split(
    labels: torch.Tensor | np.ndarray,
    fraction: float,
    *,
    random_state: int | None,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training part and a validation part of ``labels``: the one way the lab cuts
    a validation split.

    Stratified (the default): scikit-learn's ``train_test_split`` of the indices, with
    ``ceil(fraction * N)`` validation samples in the classes' proportions, so indexing arrays
    with the result equals ``train_test_split(*arrays, stratify=labels, ...)``. Not stratified:
    a seeded ``torch.randperm`` whose first ``int(fraction * N)`` indices are the validation part
    (the cut the fgsm, carlini-wagner and lr-range-test results were measured with).

    Args:
        labels: class labels ``(N,)``.
        fraction: share of the samples held out, in (0, 1).
        random_state: seed of the cut (an int; None draws a fresh one).
        stratify: keep each class's share in both parts.

    Returns:
        ``(train, val)``: int64 index arrays ``(N - V,)`` and ``(V,)``, in the cut's order.

    Example:
        >>> labels = np.repeat([0, 1], 10)
        >>> train, val = validation_split(labels, 0.2, random_state=0)
        >>> len(train), len(val), np.bincount(labels[val]).tolist()
        (16, 4, [2, 2])
    """
    check_number("fraction", fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (N,); got shape {labels.shape}")
    indices = np.arange(len(labels))
    if stratify:
        train, val = train_test_split(
            indices, test_size=fraction, stratify=labels, random_state=random_state
        )
        return train.astype(np.int64), val.astype(np.int64)
    order = torch.randperm(len(labels), generator=torch_generator(random_state)).numpy()
    num_val = int(fraction * len(labels))
    return order[num_val:], order[:num_val]


def subsample(
    images: torch.Tensor, labels: torch.Tensor, size: int, *, random_state: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` samples drawn without replacement (a seeded permutation's first ``size``); all
    of them, in their order, when ``size`` is 0 or not below their number."""
    if size <= 0 or size >= len(labels):
        return images, labels
    keep = torch.randperm(len(labels), generator=torch_generator(random_state))[:size]
    return images[keep], labels[keep]


def percent_tag(fraction: float) -> str:
    """A metric-name tag for a share: ``0.02 -> "2pct"``."""
    return f"{round(fraction * 100):g}pct"


# --- data ----------------------------------------------------------------------------------------


def data_source(data: Path) -> str:
    """What a data folder holds: ``"mnist"`` (MNIST-format IDX files, MNIST or Fashion-MNIST) or
    ``"cifar10"`` (the CIFAR-10 python batches, or their parent folder).

    Raises:
        ValueError: naming the folder and both layouts, when it holds neither.
    """
    root = Path(data)
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"):
            if (folder / name).is_file():
                return "mnist"
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
            return "cifar10"
    raise ValueError(
        f"--data '{root}' holds neither an MNIST-format IDX folder (train-images-idx3-ubyte[.gz], "
        "...) nor the CIFAR-10 python batches (cifar-10-batches-py/data_batch_1, ...)"
    )


def for_data(cfg: Any, data: Path | None) -> Any:
    """``cfg`` for the data a run reads: with ``--data``, every non-zero ``data_<name>`` field
    replaces ``<name>`` (``data_epochs=10`` -> ``epochs=10``); the digits keep ``cfg`` as it is.

    How a full preset sizes a real data set differently from the digits without moving the
    digits' numbers: ``data_*`` fields are set in the preset, 0 means "as on the digits".
    """
    if data is None:
        return cfg
    changes = {}
    for field in dataclasses.fields(cfg):
        name = field.name.removeprefix("data_")
        value = getattr(cfg, field.name)
        if field.name.startswith("data_") and value and hasattr(cfg, name):
            changes[name] = value
    return dataclasses.replace(cfg, **changes)


def train_test_images(
    data: Path | None,
    *,
    source: str = "auto",
    max_train: int = 0,
    max_test: int = 0,
    random_state: int | None = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training and test images with their labels: the bundled digits' fixed split when ``data``
    is None, else the data folder read as ``source``.

    Args:
        data: None, or the folder ``--data`` names.
        source: what ``data`` holds: ``"mnist"`` (an MNIST-format IDX folder, MNIST or
            Fashion-MNIST), ``"cifar10"`` (the CIFAR-10 python batches) or ``"auto"`` (found
            from the files, ``data_source``).
        max_train, max_test: read at most this many training / test images of ``data`` (a
            seeded random subset; 0 keeps all): how a smoke preset stays seconds long on a real
            data set. The bundled digits are always read whole.
        random_state: seed of those subsets.

    Returns:
        ``x_train (N, C, H, W)`` in [0, 1], ``y_train (N,)`` int64, ``x_test``, ``y_test``.
    """
    check_choice("source", source, (*SOURCES, "auto"))
    check_number("max_train", max_train, low=0, integer=True)
    check_number("max_test", max_test, low=0, integer=True)
    if data is None:
        x_train, y_train = load_digits_images(split="train")
        x_test, y_test = load_digits_images(split="test")
        return x_train, y_train, x_test, y_test
    if source == "auto":
        source = data_source(data)
    if source == "mnist":
        x_train, y_train = load_mnist(data, split="train")
        x_test, y_test = load_mnist(data, split="test")
    else:
        x_train, y_train, _ = load_cifar(data, split="train")
        x_test, y_test, _ = load_cifar(data, split="test")
    x_train, y_train = subsample(x_train, y_train, max_train, random_state=random_state)
    x_test, y_test = subsample(x_test, y_test, max_test, random_state=random_state)
    return x_train, y_train, x_test, y_test


def digit_features(
    *, holdout: float, pca_components: int = 0, random_state: int
) -> tuple[np.ndarray, ...]:
    """The digits as flat float64 pixel vectors for the scikit-learn estimators:
    ``image_features(None, ...)``.

    Returns:
        ``X_pool, y_pool, X_held, y_held, X_test, y_test``, features ``(N, 64)`` (or
        ``(N, pca_components)``) and labels ``(N,)``.
    """
    return image_features(
        None, holdout=holdout, pca_components=pca_components, random_state=random_state
    )


def image_features(
    data: Path | None,
    *,
    holdout: float,
    pca_components: int = 0,
    random_state: int,
    source: str = "auto",
    max_train: int = 0,
    max_test: int = 0,
) -> tuple[np.ndarray, ...]:
    """Images as flat float64 pixel vectors for the scikit-learn estimators: the digits when
    ``data`` is None, else a data folder read by ``train_test_images``.

    The training split (capped to ``max_train`` images, a subset drawn by ``random_state``) is
    cut into a pool and a held-out part (stratified, by ``random_state``); with
    ``pca_components > 0`` a PCA fitted on the pool's pixels (no labels) maps all three parts.

    Args:
        data: None (the digits) or the folder ``--data`` names.
        holdout: share of the training split held out of the pool, in (0, 1).
        pca_components: PCA components (0: the raw pixels).
        random_state: seed of the subsets, the cut and the PCA.
        source, max_train, max_test: as in ``train_test_images`` (the caps apply to ``data``
            only).

    Returns:
        ``X_pool, y_pool, X_held, y_held, X_test, y_test``: features ``(N, C*H*W)`` (or
        ``(N, pca_components)``) and int64 labels ``(N,)``.

    Example:
        >>> X_pool, y_pool, *_ = image_features(None, holdout=0.2, random_state=0)
        >>> X_pool.shape
        (1149, 64)
    """
    check_number("pca_components", pca_components, low=0, integer=True)
    images, labels, test_images, test_labels = train_test_images(
        data, source=source, max_train=max_train, max_test=max_test, random_state=random_state
    )
    X = images.reshape(len(images), -1).numpy().astype(np.float64)
    X_test = test_images.reshape(len(test_images), -1).numpy().astype(np.float64)
    y, y_test = labels.numpy(), test_labels.numpy()
    pool, held = validation_split(y, holdout, random_state=random_state)
    X_pool, X_held = X[pool], X[held]
    if pca_components:
        pca = PCA(pca_components, random_state=random_state).fit(X_pool)
        X_pool, X_held, X_test = pca.transform(X_pool), pca.transform(X_held), pca.transform(X_test)
    return X_pool, y[pool], X_held, y[held], X_test, y_test


def label_spreading_accuracy(
    spreading: Any, X: np.ndarray, y_semi: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Test accuracy of a scikit-learn ``LabelSpreading`` fitted on ``(X, y_semi)`` (-1:
    unlabeled). A test sample whose neighbours lie in a part of the knn graph no label reached
    gets NaN probabilities (0/0) and scikit-learn predicts its first class; that is its
    behaviour, kept as is, without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(spreading.fit(X, y_semi).score(X_test, y_test))


# --- models --------------------------------------------------------------------------------------


def train_small_cnn(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    width: int,
    epochs: int,
    batch_size: int,
    lr: float,
    val_fraction: float,
    random_state: int,
    num_classes: int = 10,
    desc: str = "small cnn",
    recalibrate_bn: bool = False,
) -> tuple[SmallCNN, dict[str, float]]:
    """A ``SmallCNN`` trained with Adam through ``engine.fit`` on ``images`` with a validation
    share held out (``validation_split``, not stratified), returned in eval mode.

    Args:
        images: ``(N, C, H, W)`` training images; labels ``(N,)`` in ``0..num_classes-1``.
        random_state: seed of the split and of the batch order (the weights come from the
            global generator, which the lab seeds).
        recalibrate_bn: recompute the BatchNorm statistics on the training share after
            training (``recalibrate_batch_norm``); ``val_accuracy`` is then measured after it.

    Returns:
        the model and ``{"val_accuracy": ...}`` after the last epoch.
    """
    train, val = validation_split(labels, val_fraction, random_state=random_state, stratify=False)
    model = SmallCNN(images.shape[1], num_classes, width=width)
    history = engine.fit(
        model,
        engine.make_loader(
            images[train], labels[train], batch_size=batch_size, shuffle=True, seed=random_state
        ),
        torch.optim.Adam(model.parameters(), lr=lr),
        epochs=epochs,
        val_loader=engine.make_loader(images[val], labels[val], batch_size=256),
        desc=desc,
    )
    model.eval()
    if not recalibrate_bn:
        return model, {"val_accuracy": history.last.get("val_accuracy", float("nan"))}
    recalibrate_batch_norm(model, images[train])
    predicted = engine.predict(model, engine.make_loader(images[val], batch_size=500))
    return model, {"val_accuracy": float((predicted.argmax(-1) == labels[val]).float().mean())}


def recalibrate_batch_norm(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 500
) -> None:
    """Recompute every BatchNorm layer's running statistics with the trained weights, as the
    mean of their statistics over ``images`` in batches of ``batch_size``
    (``torch.optim.swa_utils.update_bn``); the model keeps its mode and momentum.

    During training the running averages (momentum 0.1: about the last ten batches) follow a
    network that is still moving, and an eval pass normalises with them. On Fashion-MNIST that
    cost the small CNN 2.7 points of test accuracy after 10 epochs at a constant learning rate on
    all 60,000 images (0.867, recalibrated 0.894: ``scripts/real_data_check.py``) and 19 points
    after fgsm's 15 epochs on 2,550 images (0.63, recalibrated 0.82). On the digits the lab does
    not use it, so their published numbers stay as they were. Dropout placed after the last
    BatchNorm (``SmallCNN``'s head) does not change the statistics.
    """
    loader = engine.make_loader(images, batch_size=batch_size)
    torch.optim.swa_utils.update_bn(loader, model, device=engine.device())


# --- the learning-rate range test's problem --------------------------------------------------------


@dataclass
class LRRangeProblem:
    """One seed's model (at its initial weights) and data for a learning-rate range test."""

    model: torch.nn.Module
    initial: dict[str, torch.Tensor]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader


def lr_range_problem(
    *, width: int, batch_size: int, val_fraction: float, seed: int, device: torch.device
) -> LRRangeProblem:
    """The digits' train split divided into train/validation by ``seed`` (not stratified), and a
    fresh ``SmallCNN(width=width)`` initialised from ``torch.manual_seed(seed)``."""
    images, labels = load_digits_images(split="train")
    train, val = validation_split(labels, val_fraction, random_state=seed, stratify=False)
    torch.manual_seed(seed)
    model = SmallCNN(1, 10, width=width).to(device)
    return LRRangeProblem(
        model=model,
        initial={k: v.clone() for k, v in model.state_dict().items()},
        train_images=images[train],
        train_labels=labels[train],
        train=engine.make_loader(
            images[train],
            labels[train],
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
            drop_last=True,
        ),
        val=engine.make_loader(images[val], labels[val], batch_size=256),
    )


def batch_stream(problem: LRRangeProblem) -> Iterator[Any]:
    """The training batches, epoch after epoch (a range test may want more than one epoch)."""
    return itertools.chain.from_iterable(itertools.repeat(problem.train))


def trained_val_losses(
    problem: LRRangeProblem,
    *,
    lrs: Sequence[float],
    optimizer: str,
    epochs: int,
    repeats: int,
    batch_size: int,
    seed: int,
) -> list[float]:
    """The truth a range test is judged against: train from the initial weights with every
    candidate learning rate through ``engine.fit``.

    Each candidate trains ``repeats`` times (different batch orders, same initial weights) for
    ``epochs`` epochs; a training counts its best validation loss over the epochs (as early
    stopping would keep it), inf if it diverged; the candidate's score is the mean over the
    repeats, so that near-ties are not decided by one lucky ordering. The model is left at its
    initial weights.

    Returns:
        one score per learning rate, in the order of ``lrs``.
    """
    check_choice("optimizer", optimizer, tuple(OPTIMIZERS))
    model = problem.model
    losses = []
    for lr in lrs:
        scores = []
        for repeat in range(repeats):
            model.load_state_dict(problem.initial)
            engine.seed_everything(seed * 1000 + repeat)
            loader = engine.make_loader(
                problem.train_images,
                problem.train_labels,
                batch_size=batch_size,
                shuffle=True,
                seed=seed * 1000 + repeat,
                drop_last=True,
            )
            parameters = [p for p in model.parameters() if p.requires_grad]
            history = engine.fit(
                model,
                loader,
                OPTIMIZERS[optimizer](parameters, lr),
                epochs=epochs,
                val_loader=problem.val,
                on_nonfinite="stop",  # a diverging candidate is a result here, not an error
                desc=f"lr {lr:.0e}",
            )
            finite = [v for v in history.column("val_loss") if math.isfinite(v)]
            scores.append(min(finite) if finite else math.inf)
        losses.append(float(np.mean(scores)))
    model.load_state_dict(problem.initial)
    return losses


def show_image(ax: Any, image: torch.Tensor, **kwargs: Any) -> Any:
    """``ax.imshow`` of one ``(C, H, W)`` image in [0, 1] without ticks: gray for one channel,
    colour for three (the digits and MNIST, CIFAR-10). Keyword arguments go to matplotlib.
    Returns its image."""
    image = image.detach().cpu()
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"image must be (C, H, W) with C in (1, 3); got shape {tuple(image.shape)}"
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if image.shape[0] == 1:
        return ax.imshow(image[0].numpy(), **{"cmap": "gray", "vmin": 0, "vmax": 1, **kwargs})
    return ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), **kwargs)


# --- intervals in figures ------------------------------------------------------------------------


def column_estimates(rows: Iterable[Sequence[float]]) -> list[Estimate]:
    """Mean and 95% interval of each column of per-seed rows (a per-epoch curve, a per-alpha
    accuracy list): ``rows`` is ``(seeds, points)``, the result one ``Estimate`` per point."""
    rows = [list(row) for row in rows]
    lengths = sorted({len(row) for row in rows})
    if len(lengths) != 1:
        raise ValueError(f"rows must be (seeds, points) of one length; got lengths {lengths}")
    table = np.asarray(rows, dtype=float)
    return [mean_interval(column) for column in table.T]


def interval_errors(estimates: Sequence[Estimate]) -> np.ndarray:
    """``(2, N)`` distances from each mean down to its interval's low end and up to its high
    end: matplotlib's ``yerr``/``xerr``. Zero for an estimate without an interval."""
    means, lows, highs = interval_arrays(estimates)
    return np.stack([means - lows, highs - means])


def errorbar(ax: Any, x: Any, estimates: Sequence[Estimate], **kwargs: Any) -> Any:
    """``ax.errorbar`` of the means at ``x`` with their 95% intervals as error bars; keyword
    arguments go to matplotlib. Returns its container."""
    means, _, _ = interval_arrays(estimates)
    return ax.errorbar(x, means, yerr=interval_errors(estimates), **kwargs)


def band(
    ax: Any,
    x: Any,
    estimates: Sequence[Estimate],
    *,
    clip: tuple[float, float] | None = None,
    **kwargs: Any,
) -> Any:
    """``ax.fill_between`` over the intervals at ``x`` (zero width without an interval);
    ``clip=(low, high)`` keeps the band in a metric's range (a t interval of an accuracy over
    few seeds can leave [0, 1]). Returns matplotlib's collection."""
    _, lows, highs = interval_arrays(estimates)
    if clip is not None:
        lows, highs = np.clip(lows, *clip), np.clip(highs, *clip)
    return ax.fill_between(x, lows, highs, **kwargs)
