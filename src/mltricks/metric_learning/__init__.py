"""Metric learning: triplet losses, triplet mining and class-balanced batches.

Shared contract: a batch is ``embeddings`` ``(B, D)`` with integer ``labels`` ``(B,)`` holding at
least two classes; distances are unnormalised Euclidean, computed once per batch as a ``(B, B)``
matrix; a triplet set is three int64 index tensors ``(anchor_idx, positive_idx,
negative_idx)`` of equal length into the batch.
"""

from mltricks.metric_learning.class_balanced_sampler import ClassBalancedBatchSampler
from mltricks.metric_learning.triplet_margin_loss import TripletMarginLoss, triplet_margin_loss
from mltricks.metric_learning.triplet_mining import (
    MINING,
    hard_triplets,
    mine_from_distances,
    pairwise_distances,
    semi_hard_triplets,
)

__all__ = [
    "MINING",
    "ClassBalancedBatchSampler",
    "TripletMarginLoss",
    "hard_triplets",
    "mine_from_distances",
    "pairwise_distances",
    "semi_hard_triplets",
    "triplet_margin_loss",
]
