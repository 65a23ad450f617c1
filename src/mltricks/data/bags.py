"""Bags of instances for multiple instance learning, and padding them into batches.

``make_bags`` builds the MNIST-bags set-up of Ilse et al. (2018) from any labelled images: a bag
is positive iff it holds at least one instance of ``positive_class`` (a "2" in
docs/systems/multiple-instance-learning.md). The instance labels stay hidden from training but
are kept, so attention can be scored against them.
``pad_bags`` / ``collate_bags`` stack bags of different sizes into ``(B, N_max, ...)`` with a
boolean mask ``(B, N_max)`` that is True on real instances.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mltricks._utils.checks import check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import NumpyRandomState, numpy_generator


@dataclass
class Bags(Dataset):
    """A set of bags; ``bags[i]`` is ``(instances, label, instance_labels)``.

    Attributes:
        instances: per bag a ``(n_i, ...)`` tensor of instances.
        labels: ``(num_bags,)`` int64, 1 for a positive bag.
        instance_labels: per bag a ``(n_i,)`` bool tensor, True on instances of the positive
            class (hidden from training).
        indices: per bag the ``(n_i,)`` indices of its instances in the source images.
    """

    instances: list[torch.Tensor]
    labels: torch.Tensor
    instance_labels: list[torch.Tensor]
    indices: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.instances[index], self.labels[index], self.instance_labels[index]

    @property
    def sizes(self) -> torch.Tensor:
        """``(num_bags,)`` number of instances of each bag."""
        return torch.tensor([len(bag) for bag in self.instances])


@renamed_argument("seed", "random_state")
def make_bags(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    positive_class: int = 2,
    mean_bag_size: float = 10,
    std_bag_size: float = 2,
    num_bags: int,
    positive_fraction: float = 0.5,
    random_state: NumpyRandomState = None,
) -> Bags:
    """Draw bags of images; a bag is positive iff it contains an image of ``positive_class``.

    Bag sizes are ``round(Normal(mean_bag_size, std_bag_size))``, at least 1. Exactly
    ``round(positive_fraction * num_bags)`` bags are positive, in random order. A negative bag
    holds distinct images of the other classes. A positive bag holds as many positives as a bag
    drawn uniformly from all images would, given that it holds at least one: the count ``k`` is
    Binomial(``n``, share of positives) restricted to ``k >= 1``.

    Args:
        images: ``(N, ...)`` instances.
        labels: ``(N,)`` int class of each instance.
        positive_class: the class whose presence makes a bag positive.
        mean_bag_size: mean number of instances per bag (at least 1).
        std_bag_size: standard deviation of the bag size (0 for equal sizes).
        num_bags: number of bags.
        positive_fraction: share of positive bags, in [0, 1].
        random_state: seed of the draw: an int, a numpy ``Generator``/``RandomState`` or None
            (``seed=`` is a deprecated alias).

    Returns:
        ``Bags`` (a ``Dataset`` of ``(instances, label, instance_labels)``).

    Example:
        >>> from mltricks.data import load_digits_images, make_bags
        >>> images, labels = load_digits_images(split="train")
        >>> bags = make_bags(images, labels, num_bags=100, random_state=0)
        >>> bool((bags.labels == 1).sum() == 50)
        True
    """
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if labels.ndim != 1 or len(images) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"images (N, ...) and labels (N,) must hold the same N > 0 samples; got shapes "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    check_number("num_bags", num_bags, low=1, integer=True)
    check_number("mean_bag_size", mean_bag_size, low=1.0)
    check_number("std_bag_size", std_bag_size, low=0.0)
    check_number("positive_fraction", positive_fraction, low=0.0, high=1.0)
    is_positive = (labels == positive_class).numpy()
    positives, negatives = np.flatnonzero(is_positive), np.flatnonzero(~is_positive)
    num_positive_bags = round(positive_fraction * num_bags)
    if num_positive_bags > 0 and len(positives) == 0:
        present = sorted(set(labels.tolist()))
        raise ValueError(
            f"positive_class={positive_class!r} does not occur in labels (present: {present}); "
            "no positive bag can be made"
        )
    if len(negatives) == 0:
        raise ValueError(
            f"every label is positive_class={positive_class!r}; negative bags need other classes"
        )
    rng = numpy_generator(random_state)
    sizes = np.maximum(1, np.rint(rng.normal(mean_bag_size, std_bag_size, num_bags))).astype(int)
    bag_labels = np.zeros(num_bags, dtype=np.int64)
    bag_labels[rng.permutation(num_bags)[:num_positive_bags]] = 1
    share = len(positives) / len(labels)
    bags, instance_labels, indices = [], [], []
    for size, label in zip(sizes, bag_labels):
        num_pos = _positive_count(rng, int(size), share) if label else 0
        drawn = np.concatenate(
            [
                _draw(rng, positives, num_pos),
                _draw(rng, negatives, int(size) - num_pos),
            ]
        )
        chosen = rng.permutation(drawn)
        indices.append(torch.from_numpy(chosen))
        bags.append(images[torch.from_numpy(chosen)])
        instance_labels.append(torch.from_numpy(is_positive[chosen]))
    return Bags(bags, torch.from_numpy(bag_labels), instance_labels, indices)


def _positive_count(rng: np.random.Generator, size: int, share: float) -> int:
    """``k ~ Binomial(size, share)`` given ``k >= 1``, drawn exactly from its probabilities."""
    return int(rng.choice(np.arange(1, size + 1), p=_positive_count_probs(size, share)))


@functools.lru_cache(maxsize=256)
def _positive_count_probs(size: int, share: float) -> np.ndarray:
    counts = np.arange(1, size + 1)
    log_pmf = np.array(
        [math.lgamma(size + 1) - math.lgamma(k + 1) - math.lgamma(size - k + 1) for k in counts]
    )
    with np.errstate(divide="ignore"):
        log_pmf += counts * np.log(share) + (size - counts) * np.log1p(-share)
    probs = np.exp(log_pmf - log_pmf.max())
    return probs / probs.sum()


def _draw(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """``count`` images of ``pool``: distinct when the pool is large enough."""
    return rng.choice(pool, size=count, replace=count > len(pool))


def pad_bags(
    bags: Sequence[torch.Tensor], padding_value: float = 0.0, *, length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack bags of different sizes into one padded batch.

    Args:
        bags: ``B`` tensors ``(n_i, ...)`` with the same trailing shape; no bag may be empty.
        padding_value: value of the padding instances.
        length: pad to this many instances (at least the largest bag); the largest bag's size
            when None. A fixed length lets batches of outputs be concatenated.

    Returns:
        ``padded`` ``(B, N, ...)`` and ``mask`` ``(B, N)`` bool, True on real instances, with
        ``N = length`` or the largest bag's size.

    Example:
        >>> padded, mask = pad_bags([torch.ones(2, 3), torch.ones(4, 3)])
        >>> padded.shape, mask.sum(1).tolist()
        (torch.Size([2, 4, 3]), [2, 4])
    """
    if len(bags) == 0:
        raise ValueError("bags must hold at least one bag; got none")
    sizes = [len(bag) for bag in bags]
    empty = [i for i, size in enumerate(sizes) if size == 0]
    if empty:
        raise ValueError(f"bags must not be empty; bags {empty} have no instances")
    trailing = {tuple(bag.shape[1:]) for bag in bags}
    if len(trailing) != 1:
        raise ValueError(f"every instance must have the same shape; got {sorted(trailing)}")
    if length is not None:
        check_number("length", length, low=max(sizes), integer=True)
    size = max(sizes) if length is None else length
    padded = bags[0].new_full((len(bags), size, *bags[0].shape[1:]), padding_value)
    mask = torch.zeros(len(bags), size, dtype=torch.bool, device=bags[0].device)
    for i, bag in enumerate(bags):
        padded[i, : len(bag)] = bag
        mask[i, : len(bag)] = True
    return padded, mask


def collate_bags(
    batch: Sequence[tuple[Any, ...]], *, length: int | None = None
) -> tuple[torch.Tensor, ...]:
    """``collate_fn`` for a ``DataLoader`` over ``Bags`` (``functools.partial(collate_bags,
    length=...)`` pads every batch to the same length).

    Returns:
        ``(padded, mask, labels, instance_labels)``: ``(B, N, ...)``, ``(B, N)`` bool, ``(B,)``
        and ``(B, N)`` bool (False on padding).
    """
    instances, labels, instance_labels = zip(*batch)
    padded, mask = pad_bags(instances, length=length)
    hidden, _ = pad_bags(
        [torch.as_tensor(x) for x in instance_labels], padding_value=False, length=length
    )
    return padded, mask, torch.stack([torch.as_tensor(y) for y in labels]), hidden
