"""The learning-rate range test's problem, shared by the ``lr-range-test`` experiment and
``benchmarks/bench_lr_range_test.py``: one seed's model and digits, and the truth a range test is
judged against (every candidate trained for a few epochs).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mltricks._utils.checks import check_choice
from mltricks._utils.deprecation import renamed_argument
from mltricks.data import load_digits_images
from mltricks.lab import engine
from mltricks.lab.splits import validation_split
from mltricks.models import SmallCNN
from mltricks.tuning import OPTIMIZERS

__all__ = ["LRRangeProblem", "batch_stream", "lr_range_problem", "trained_val_losses"]


@dataclass
class LRRangeProblem:
    """One seed's model (at its initial weights) and data for a learning-rate range test."""

    model: torch.nn.Module
    initial: dict[str, torch.Tensor]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader


@renamed_argument("seed", "random_state")
def lr_range_problem(
    *, width: int, batch_size: int, val_fraction: float, random_state: int, device: torch.device
) -> LRRangeProblem:
    """The digits' train split divided into train/validation by ``random_state`` (not
    stratified), and a fresh ``SmallCNN(width=width)`` initialised from
    ``torch.manual_seed(random_state)``; the training batches are shuffled by it too.
    ``seed=`` is its deprecated name (deprecated in 0.2.0, removed in 0.3.0).

    Example:
        >>> problem = lr_range_problem(
        ...     width=4, batch_size=32, val_fraction=0.25, random_state=0, device=torch.device("cpu")
        ... )
        >>> len(problem.train_labels), len(problem.val.dataset)
        (1078, 359)
    """
    images, labels = load_digits_images(split="train")
    train, val = validation_split(labels, val_fraction, random_state=random_state, stratify=False)
    torch.manual_seed(random_state)
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
            random_state=random_state,
            drop_last=True,
        ),
        val=engine.make_loader(images[val], labels[val], batch_size=256),
    )


def batch_stream(problem: LRRangeProblem) -> Iterator[Any]:
    """The training batches, epoch after epoch (a range test may want more than one epoch)."""
    return itertools.chain.from_iterable(itertools.repeat(problem.train))


@renamed_argument("seed", "random_state")
def trained_val_losses(
    problem: LRRangeProblem,
    *,
    lrs: Sequence[float],
    optimizer: str,
    epochs: int,
    repeats: int,
    batch_size: int,
    random_state: int,
) -> list[float]:
    """The truth a range test is judged against: train from the initial weights with every
    candidate learning rate through ``engine.fit``.

    Each candidate trains ``repeats`` times (different batch orders, same initial weights) for
    ``epochs`` epochs; a training counts its best validation loss over the epochs (as early
    stopping would keep it), inf if it diverged; the candidate's score is the mean over the
    repeats, so that near-ties are not decided by one lucky ordering. The model is left at its
    initial weights. ``seed=`` is the deprecated name of ``random_state`` (deprecated in 0.2.0,
    removed in 0.3.0).

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
            engine.seed_everything(random_state * 1000 + repeat)
            loader = engine.make_loader(
                problem.train_images,
                problem.train_labels,
                batch_size=batch_size,
                shuffle=True,
                random_state=random_state * 1000 + repeat,
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
