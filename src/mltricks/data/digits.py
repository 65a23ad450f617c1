"""scikit-learn's bundled handwritten digits as image tensors (no download)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mltricks._utils.checks import check_choice, check_number

SPLITS = ("all", "train", "test")


def load_digits_images(
    *, split: str = "all", test_fraction: float = 0.2, random_state: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits`` as float images in [0, 1].

    The train/test split is stratified and fixed by ``random_state`` (0 by default), so every
    experiment that asks for ``split="test"`` sees the same 360 images whatever its own seed.

    Args:
        split: ``"all"``, ``"train"`` or ``"test"``.
        test_fraction: share of the images in the test split.
        random_state: seed of the split.

    Returns:
        images ``(N, 1, 8, 8)`` float32 in [0, 1] and labels ``(N,)`` int64 in 0..9.

    Example:
        >>> images, labels = load_digits_images(split="train")
        >>> images.shape, labels.shape
        (torch.Size([1437, 1, 8, 8]), torch.Size([1437]))
    """
    check_choice("split", split, SPLITS)
    check_number(
        "test_fraction", test_fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
    )
    digits = load_digits()
    images = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    if split == "all":
        return images, labels
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=test_fraction,
        stratify=digits.target,
        random_state=random_state,
    )
    idx = torch.from_numpy(train_idx if split == "train" else test_idx)
    return images[idx], labels[idx]
