"""The ``reduction`` argument of the family's losses: the values it takes and what each does."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def reduce_per_sample(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """The mean (``"mean"``) or sum (``"sum"``) of per-sample losses, or the losses unchanged
    (``"none"``); ``reduction`` is checked by the caller against ``REDUCTIONS``."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
