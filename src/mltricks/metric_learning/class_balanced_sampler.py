"""Batches of ``classes_per_batch`` classes with ``samples_per_class`` samples each, so every
anchor of a triplet batch has positives (the "P x K" batches of Hermans et al. 2017,
https://arxiv.org/abs/1703.07737)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from mltricks._utils.checks import check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import NumpyRandomState, numpy_generator


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yield index batches holding ``samples_per_class`` samples of each of
    ``classes_per_batch`` classes.

    Each class keeps its own shuffled queue of sample indices and hands out the next
    ``samples_per_class`` of them, refilling with a new permutation when it runs short, so the
    samples of a class are visited evenly across batches and epochs. A class with fewer samples
    than ``samples_per_class`` repeats some within a batch. Pass it to
    ``DataLoader(dataset, batch_sampler=...)``.

    Args:
        labels: ``(N,)`` integer class of every sample of the data set.
        samples_per_class: samples of each class in a batch (>= 2, so anchors have positives).
        classes_per_batch: classes in a batch, drawn at random per batch when fewer than all
            (>= 2, so anchors have negatives); all classes when None.
        num_batches: batches per epoch; ``N // batch_size`` (at least 1) when None.
        random_state: the sampler's own generator: an int seed, a ``np.random.Generator``
            (used as is) or ``RandomState``, or None (seeded by the system); successive
            epochs draw different batches. ``seed=`` is its deprecated name.

    Example:
        >>> labels = [0, 0, 0, 1, 1, 1, 2, 2]
        >>> sampler = ClassBalancedBatchSampler(labels, samples_per_class=2)
        >>> len(sampler), [sorted(labels[i] for i in batch) for batch in sampler]
        (1, [[0, 0, 1, 1, 2, 2]])
    """

    @renamed_argument("seed", "random_state")
    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor | np.ndarray,
        *,
        samples_per_class: int,
        classes_per_batch: int | None = None,
        num_batches: int | None = None,
        random_state: NumpyRandomState = 0,
    ) -> None:
        array = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-d sequence of integer class ids; got shape {array.shape} "
                f"of dtype {array.dtype}"
            )
        self.classes = np.unique(array)
        if len(self.classes) < 2:
            raise ValueError(
                f"labels must hold at least two classes for triplets; got {self.classes.tolist()}"
            )
        check_number("samples_per_class", samples_per_class, low=2, integer=True)
        if classes_per_batch is None:
            classes_per_batch = len(self.classes)
        check_number(
            "classes_per_batch", classes_per_batch, low=2, high=len(self.classes), integer=True
        )
        self.samples_per_class = int(samples_per_class)
        self.classes_per_batch = int(classes_per_batch)
        self.batch_size = self.samples_per_class * self.classes_per_batch
        if num_batches is None:
            num_batches = max(1, len(array) // self.batch_size)
        check_number("num_batches", num_batches, low=1, integer=True)
        self.num_batches = int(num_batches)
        self._members = [np.flatnonzero(array == c) for c in self.classes]
        self._rng = numpy_generator(random_state)
        self._queues: list[list[int]] = [[] for _ in self.classes]

    def __len__(self) -> int:
        return self.num_batches

    def _take(self, class_index: int) -> list[int]:
        queue = self._queues[class_index]
        while len(queue) < self.samples_per_class:
            queue.extend(self._rng.permutation(self._members[class_index]).tolist())
        taken, self._queues[class_index] = (
            queue[: self.samples_per_class],
            queue[self.samples_per_class :],
        )
        return taken

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.num_batches):
            if self.classes_per_batch == len(self.classes):
                chosen = np.arange(len(self.classes))
            else:
                chosen = self._rng.choice(len(self.classes), self.classes_per_batch, replace=False)
            yield [index for c in chosen for index in self._take(int(c))]
