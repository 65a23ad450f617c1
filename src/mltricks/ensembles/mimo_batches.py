"""MIMO training batches: every member gets its own shuffle of the batch (Havasi et al. 2021).

https://openreview.net/forum?id=OGg9XnKxFAH, section 3 and appendix B.

Each epoch draws a fresh order of the data set and cuts it into batches of ``batch_size``
distinct examples. Within a batch:

- batch repetition ``r``: every example appears ``r`` times (``batch_size * r`` rows per member);
- every member gets an independent permutation of those rows, so member m's label belongs to
  member m's input but the M inputs of one row are (mostly) different examples;
- input repetition ``rho``: a share ``rho`` of the rows is left out of the member shuffles, so
  there all members see the same example (it helps small networks share features).

The permutations come from a generator seeded by ``(seed, epoch)``: they differ between members
and between epochs, and are the same in every process of a distributed run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from mltricks._utils.checks import check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import seed_from


class MIMOBatchSampler(Sampler[list[tuple[int, ...]]]):
    """Batch sampler whose batches are lists of rows of M example indices (one per member).

    Use it as ``DataLoader(..., batch_sampler=sampler)`` over a data set that reads such rows
    (``mimo_loader`` does both). Every ``iter()`` starts a new epoch with new permutations.

    Args:
        num_examples: size N of the data set.
        num_members: ensemble size M.
        batch_size: distinct examples per batch.
        rho: share of each batch's rows where all members see the same example, in [0, 1].
        batch_repetitions: times every example of a batch is repeated (>= 1).
        drop_last: drop the last, smaller batch of an epoch.
        random_state: seeds the permutations together with the epoch number: an int, a
            numpy or torch generator (one seed drawn from it here) or None (a seed drawn
            from the system). ``seed=`` is its deprecated name.

    Attributes:
        batch_size: rows per yielded batch, ``batch_size * batch_repetitions`` (what
            ``DataLoader`` and Accelerate read).
        epoch: the epoch the next ``iter()`` draws.
    """

    @renamed_argument("seed", "random_state")
    def __init__(
        self,
        num_examples: int,
        *,
        num_members: int,
        batch_size: int,
        rho: float = 0.0,
        batch_repetitions: int = 1,
        drop_last: bool = True,
        random_state: int | np.random.Generator | torch.Generator | None = 0,
    ) -> None:
        check_number("num_examples", num_examples, low=1, integer=True)
        check_number("num_members", num_members, low=1, integer=True)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("rho", rho, low=0.0, high=1.0)
        check_number("batch_repetitions", batch_repetitions, low=1, integer=True)
        seed = seed_from(random_state)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(2, dtype=np.uint64)[0] >> 1)
        if drop_last and batch_size > num_examples:
            raise ValueError(
                f"batch_size={batch_size} is larger than the data set ({num_examples} examples) "
                "and drop_last=True would leave no batch"
            )
        self.num_examples = num_examples
        self.num_members = num_members
        self.examples_per_batch = batch_size
        self.batch_size = batch_size * batch_repetitions
        self.rho = rho
        self.batch_repetitions = batch_repetitions
        self.drop_last = drop_last
        self.random_state = random_state
        self.seed = seed  # the int the permutations are drawn from
        self.epoch = 0

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.examples_per_batch
        return math.ceil(self.num_examples / self.examples_per_batch)

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        batches = self.epoch_indices(self.epoch)
        self.epoch += 1
        for batch in batches:
            yield [tuple(row) for row in batch.T.tolist()]

    def epoch_indices(self, epoch: int) -> list[torch.Tensor]:
        """The batches of ``epoch`` as index tensors ``(M, rows)``: row ``m`` is member m's."""
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, dtype=np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        order = torch.randperm(self.num_examples, generator=generator)
        batches = []
        for start in range(0, len(self) * self.examples_per_batch, self.examples_per_batch):
            examples = order[start : start + self.examples_per_batch]
            rows = examples.repeat(self.batch_repetitions)
            rows = rows[torch.randperm(len(rows), generator=generator)]
            # the rows after `shuffled` keep their place for every member: input repetition
            shuffled = len(rows) - round(self.rho * len(rows))
            members = [
                torch.cat(
                    [
                        rows[:shuffled][torch.randperm(shuffled, generator=generator)],
                        rows[shuffled:],
                    ]
                )
                for _ in range(self.num_members)
            ]
            batches.append(torch.stack(members))  # (M, rows)
        return batches


class MIMODataset(Dataset):
    """Reads rows of member indices from a data set of ``(input, target)`` pairs.

    ``dataset[(i_0, ..., i_{M-1})]`` is ``(inputs (M, ...), targets (M,))``; a batch of rows read
    at once (what ``DataLoader`` does with a batch sampler) is ``(inputs (M, B, ...), targets
    (M, B))``: member m's targets are the labels of member m's inputs.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, row: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.__getitems__([row])
        return inputs[:, 0], targets[:, 0]

    def __getitems__(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(rows, dtype=torch.int64).T  # (M, B)
        if isinstance(self.dataset, TensorDataset) and len(self.dataset.tensors) == 2:
            inputs, targets = self.dataset.tensors
            return inputs[index], targets[index]
        pairs = [[self.dataset[i] for i in member] for member in index.tolist()]
        inputs = torch.stack([torch.stack([torch.as_tensor(p[0]) for p in m]) for m in pairs])
        targets = torch.stack([torch.as_tensor([p[1] for p in m]) for m in pairs])
        return inputs, targets


def _as_is(batch: Any) -> Any:
    """``MIMODataset.__getitems__`` already returns the batch (module level so it pickles)."""
    return batch


@renamed_argument("seed", "random_state")
def mimo_loader(
    *data: torch.Tensor | Dataset,
    num_members: int,
    batch_size: int,
    rho: float = 0.0,
    batch_repetitions: int = 1,
    drop_last: bool = True,
    random_state: int | np.random.Generator | torch.Generator | None = 0,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` of MIMO training batches ``(inputs (M, R, ...), targets (M, R))``.

    Args:
        data: ``inputs, targets`` tensors, or one ``Dataset`` of ``(input, target)`` pairs.
        num_members: see ``MIMOBatchSampler``.
        batch_size: see ``MIMOBatchSampler``; ``R = batch_size * batch_repetitions`` rows per
            member.
        rho: see ``MIMOBatchSampler``.
        batch_repetitions: see ``MIMOBatchSampler``.
        drop_last: see ``MIMOBatchSampler``.
        random_state: see ``MIMOBatchSampler``.
        num_workers: ``DataLoader`` worker processes.

    Example:
        >>> x, y = torch.rand(10, 1, 8, 8), torch.arange(10)
        >>> inputs, targets = next(iter(mimo_loader(x, y, num_members=3, batch_size=4)))
        >>> inputs.shape, targets.shape
        (torch.Size([3, 4, 1, 8, 8]), torch.Size([3, 4]))
    """
    dataset: Dataset
    if len(data) == 1 and isinstance(data[0], Dataset):
        dataset = data[0]
    elif len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        if len(data[0]) != len(data[1]):  # type: ignore[arg-type]
            raise ValueError(
                f"inputs and targets must have the same length; got "
                f"{len(data[0])} and {len(data[1])}"  # type: ignore[arg-type]
            )
        dataset = TensorDataset(*data)  # type: ignore[arg-type]
    else:
        raise TypeError("data must be (inputs, targets) tensors or one Dataset of pairs")
    sampler = MIMOBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        num_members=num_members,
        batch_size=batch_size,
        rho=rho,
        batch_repetitions=batch_repetitions,
        drop_last=drop_last,
        random_state=random_state,
    )
    return DataLoader(
        MIMODataset(dataset), batch_sampler=sampler, collate_fn=_as_is, num_workers=num_workers
    )
