"""Images the experiments read: the bundled digits, or a ``--data`` folder (MNIST format or the
CIFAR-10 batches), as tensors for the networks and as flat pixels for scikit-learn.

How much of a real data set a run reads is configuration (``config.DataSubset``: ``max_train``,
``max_test`` and the rule for their seeded subsets); ``read_images(cfg, ctx)`` applies it.

Example:
    >>> x_train, y_train, x_test, y_test = train_test_images(None)
    >>> tuple(x_train.shape), tuple(x_test.shape)
    ((1437, 1, 8, 8), (360, 1, 8, 8))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA

from mltricks._utils.checks import check_choice, check_number
from mltricks.data import load_cifar, load_digits_images, load_mnist
from mltricks.lab import data_formats
from mltricks.lab.config import DataSubset
from mltricks.lab.splits import subsample, validation_split

__all__ = [
    "IMAGE_DATA",
    "PIXEL_FEATURES_DATA",
    "SMOKE_SUBSET",
    "SOURCES",
    "PixelFeatures",
    "digit_features",
    "image_features",
    "read_features",
    "read_images",
    "train_test_images",
]

SOURCES = ("mnist", "cifar10")
# the DATA text of an experiment that reads either source through ``train_test_images``
IMAGE_DATA = "an MNIST-format IDX folder (MNIST, Fashion-MNIST) or the CIFAR-10 python batches"
# what a smoke preset reads of a --data set (its data_config): seconds, not minutes
SMOKE_SUBSET = {"max_train": 2000, "max_test": 500}


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
            Fashion-MNIST, or a folder holding one as ``mnist/``), ``"cifar10"`` (the CIFAR-10
            python batches) or ``"auto"`` (found from the file names).
        max_train, max_test: read at most this many training / test images of ``data`` (a
            seeded random subset; 0 keeps all): how a smoke preset stays seconds long on a real
            data set. The bundled digits are always read whole.
        random_state: seed of those subsets.

    Returns:
        ``x_train (N, C, H, W)`` in [0, 1], ``y_train (N,)`` int64, ``x_test``, ``y_test``.

    Raises:
        ValueError: ``data`` holds neither source (naming the folder and both layouts).
    """
    check_choice("source", source, (*SOURCES, "auto"))
    check_number("max_train", max_train, low=0, integer=True)
    check_number("max_test", max_test, low=0, integer=True)
    if data is None:
        x_train, y_train = load_digits_images(split="train")
        x_test, y_test = load_digits_images(split="test")
        return x_train, y_train, x_test, y_test
    if source == "auto":
        found = data_formats.find_format(Path(data), SOURCES)
        if found is None:
            raise ValueError(data_formats.refusal(Path(data), SOURCES, "this experiment"))
        source = found
    if source == "mnist":
        folder = data_formats.mnist_folder(Path(data)) or data  # the loader names what is missing
        x_train, y_train = load_mnist(folder, split="train")
        x_test, y_test = load_mnist(folder, split="test")
    else:
        x_train, y_train, _ = load_cifar(data, split="train")
        x_test, y_test, _ = load_cifar(data, split="test")
    x_train, y_train = subsample(x_train, y_train, max_train, random_state=random_state)
    x_test, y_test = subsample(x_test, y_test, max_test, random_state=random_state)
    return x_train, y_train, x_test, y_test


def read_images(
    cfg: DataSubset, ctx: Any, *, source: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``train_test_images`` of a run: ``ctx.data`` read as ``cfg`` says (``max_train``,
    ``max_test``, subsets drawn by ``cfg.subset_random_state(ctx.seed)``)."""
    return train_test_images(
        ctx.data,
        source=source,
        max_train=cfg.max_train,
        max_test=cfg.max_test,
        random_state=cfg.subset_random_state(ctx.seed),
    )


def digit_features(
    *, holdout_fraction: float, pca_components: int = 0, random_state: int
) -> tuple[np.ndarray, ...]:
    """The digits as flat float64 pixel vectors for the scikit-learn estimators:
    ``image_features(None, ...)``.

    Returns:
        ``X_pool, y_pool, X_held, y_held, X_test, y_test``, features ``(N, 64)`` (or
        ``(N, pca_components)``) and labels ``(N,)``.
    """
    return image_features(
        None,
        holdout_fraction=holdout_fraction,
        pca_components=pca_components,
        random_state=random_state,
    )


def image_features(
    data: Path | None,
    *,
    holdout_fraction: float,
    pca_components: int = 0,
    random_state: int,
    source: str = "auto",
    max_train: int = 0,
    max_test: int = 0,
    subset_random_state: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Images as flat float64 pixel vectors for the scikit-learn estimators: the digits when
    ``data`` is None, else a data folder read by ``train_test_images``.

    The training split (capped to ``max_train`` images, a subset drawn by
    ``subset_random_state``) is cut into a pool and a held-out part (stratified, by
    ``random_state``); with ``pca_components > 0`` a PCA fitted on the pool's pixels (no labels)
    maps all three parts.

    Args:
        data: None (the digits) or the folder ``--data`` names.
        holdout_fraction: share of the training split held out of the pool, in (0, 1).
        pca_components: PCA components (0: the raw pixels).
        random_state: seed of the cut and the PCA (and of the subsets, by default).
        source, max_train, max_test: as in ``train_test_images`` (the caps apply to ``data``
            only).
        subset_random_state: seed of the capped subsets (None: ``random_state``).

    Returns:
        ``X_pool, y_pool, X_held, y_held, X_test, y_test``: features ``(N, C*H*W)`` (or
        ``(N, pca_components)``) and int64 labels ``(N,)``.

    Raises:
        ValueError: too few images to cut a stratified held-out part (naming ``max_train`` and
            ``holdout_fraction``, the settings that fix it), or more PCA components than pool
            images.

    Example:
        >>> X_pool, y_pool, *_ = image_features(None, holdout_fraction=0.2, random_state=0)
        >>> X_pool.shape
        (1149, 64)
    """
    check_number("pca_components", pca_components, low=0, integer=True)
    subsets = random_state if subset_random_state is None else subset_random_state
    images, labels, test_images, test_labels = train_test_images(
        data, source=source, max_train=max_train, max_test=max_test, random_state=subsets
    )
    X = images.reshape(len(images), -1).numpy().astype(np.float64)
    X_test = test_images.reshape(len(test_images), -1).numpy().astype(np.float64)
    y, y_test = labels.numpy(), test_labels.numpy()
    try:
        pool, held = validation_split(y, holdout_fraction, random_state=random_state)
    except ValueError as error:
        raise ValueError(
            f"{error}: read more training images (max_train={max_train}) or change "
            f"holdout_fraction={holdout_fraction:g}"
        ) from None
    X_pool, X_held = X[pool], X[held]
    if pca_components:
        if pca_components > min(X_pool.shape):
            raise ValueError(
                f"pca_components={pca_components} is more than the pool's {len(X_pool)} images "
                f"of {X_pool.shape[1]} pixels allow; lower it or read more (max_train)"
            )
        pca = PCA(pca_components, random_state=random_state).fit(X_pool)
        X_pool, X_held, X_test = pca.transform(X_pool), pca.transform(X_held), pca.transform(X_test)
    return X_pool, y[pool], X_held, y[held], X_test, y_test


@dataclass
class PixelFeatures(DataSubset):
    """The features of the scikit-learn experiments (cluster-then-label, self-training): the
    training split cut into a pool and a held-out part, the same cut for both so that their
    numbers line up.

    With ``--data`` (``PIXEL_FEATURES_DATA``) the features are a fixed map of the pixels: a PCA
    with ``pca_components`` components fitted on the pool's images (their labels unused), and
    the training split is a random subset of ``max_train`` images (per seed), so that a labeled
    share is a share of a pool of ``(1 - holdout_fraction) * max_train`` images (1% of 4,000:
    40 labels).
    """

    pca_components: int = 0  # 0: the raw pixels
    holdout_fraction: float = 0.2  # of the training split, left out of the pool


# with --data: 5,000 training images (a subset per seed), all test images, a PCA of the pixels
PIXEL_FEATURES_DATA = {"max_train": 5000, "pca_components": 50}


def read_features(cfg: PixelFeatures, ctx: Any) -> tuple[np.ndarray, ...]:
    """``image_features`` of a run: ``ctx.data`` cut and mapped as ``cfg`` says, by
    ``ctx.seed``; ``X_pool, y_pool, X_held, y_held, X_test, y_test``."""
    return image_features(
        ctx.data,
        holdout_fraction=cfg.holdout_fraction,
        pca_components=cfg.pca_components,
        random_state=ctx.seed,
        max_train=cfg.max_train,
        max_test=cfg.max_test,
        subset_random_state=cfg.subset_random_state(ctx.seed),
    )
