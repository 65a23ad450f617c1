"""Triplet margin loss ``max(d(a, p) - d(a, n) + margin, 0)`` with Euclidean ``d``, and its
module that mines the triplets of each batch from one pairwise distance matrix.

Schroff et al. 2015, FaceNet (https://arxiv.org/abs/1503.03832); batch-hard mining: Hermans et
al. 2017, In Defense of the Triplet Loss (https://arxiv.org/abs/1703.07737).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from smallml._utils.checks import check_choice, check_number
from smallml.metric_learning.triplet_mining import (
    MINING,
    check_batch,
    mine_from_distances,
    pairwise_distances,
)

REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return losses
    if reduction == "sum" or losses.numel() == 0:
        return losses.sum()  # no triplet: a zero that still belongs to the graph
    return losses.mean()


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """``max(||a - p|| - ||a - n|| + margin, 0)`` per triplet, reduced.

    Args:
        anchor: ``(T, D)`` anchor embeddings.
        positive: ``(T, D)`` embeddings of the anchors' classes.
        negative: ``(T, D)`` embeddings of other classes.
        margin: the wanted gap between positive and negative distance (>= 0).
        reduction: ``"mean"`` (0 when ``T == 0``), ``"sum"`` or ``"none"`` (``(T,)``).

    Returns:
        The loss, a scalar or ``(T,)``.

    Example:
        >>> a, p, n = torch.zeros(1, 2), torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 1.0]])
        >>> float(triplet_margin_loss(a, p, n, margin=1.0))  # 5 - 1 + 1
        5.0
    """
    check_number("margin", margin, low=0.0)
    check_choice("reduction", reduction, REDUCTIONS)
    if not anchor.shape == positive.shape == negative.shape or anchor.ndim != 2:
        raise ValueError(
            "anchor, positive and negative must be (T, D) tensors of one shape; got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    to_positive = torch.linalg.vector_norm(anchor - positive, dim=1)
    to_negative = torch.linalg.vector_norm(anchor - negative, dim=1)
    return _reduce(F.relu(to_positive - to_negative + margin), reduction)


class TripletMarginLoss(nn.Module):
    """Triplet margin loss over the triplets a miner picks in each batch.

    One ``(B, B)`` distance matrix per batch serves both the mining (read without gradient) and
    the loss, so mining costs no second forward pass over the embeddings. After each call,
    ``stats`` holds the batch's ``num_triplets``, ``active_fraction`` (share of triplets with a
    positive loss), ``mean_positive_distance``, ``mean_negative_distance`` and
    ``mean_pairwise_distance``. When the mean pairwise distance falls below
    ``collapse_threshold`` a ``RuntimeWarning`` says the embeddings have collapsed to a point
    (the loss then sits at ``margin`` and gives no useful gradient).

    Args:
        margin: the wanted gap between positive and negative distance (>= 0).
        mining: ``"hard"`` (farthest positive, nearest negative per anchor), ``"semi_hard"``
            (per anchor-positive pair, the nearest negative beyond the positive inside the
            margin), ``"all"`` (every valid triplet) or ``"random"`` (one random positive and
            negative per anchor); see ``smallml.metric_learning.triplet_mining``.
        collapse_threshold: mean pairwise distance, in embedding units, below which the
            collapse warning fires (0 disables it).
        generator: random generator of ``"random"`` mining (the global one when None).

    Shapes:
        ``forward(embeddings (B, D), labels (B,)) -> scalar``, the mean over mined triplets (0
        when there is none).

    Example:
        >>> loss_fn = TripletMarginLoss(margin=1.0, mining="hard")
        >>> embeddings = torch.randn(8, 2, requires_grad=True)
        >>> loss = loss_fn(embeddings, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
        >>> loss.backward(); loss_fn.stats["num_triplets"]
        8.0
    """

    def __init__(
        self,
        margin: float = 1.0,
        mining: str = "hard",
        *,
        collapse_threshold: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_number("margin", margin, low=0.0)
        check_choice("mining", mining, MINING)
        check_number("collapse_threshold", collapse_threshold, low=0.0)
        self.margin = float(margin)
        self.mining = mining
        self.collapse_threshold = float(collapse_threshold)
        self.generator = generator
        self.stats: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(embeddings, labels)
        distances = pairwise_distances(embeddings)  # (B, B), with gradient
        anchor, positive, negative = mine_from_distances(
            distances, labels, self.mining, margin=self.margin, generator=self.generator
        )
        to_positive = distances[anchor, positive]  # (T,)
        to_negative = distances[anchor, negative]
        losses = F.relu(to_positive - to_negative + self.margin)
        self._record(distances.detach(), to_positive.detach(), to_negative.detach(), losses)
        return _reduce(losses, "mean")

    def _record(
        self,
        distances: torch.Tensor,
        to_positive: torch.Tensor,
        to_negative: torch.Tensor,
        losses: torch.Tensor,
    ) -> None:
        batch = len(distances)
        empty = torch.zeros((), device=distances.device)
        # one device-to-host copy for all statistics
        values = torch.stack(
            [
                torch.tensor(float(len(losses)), device=distances.device),
                (losses.detach() > 0).float().mean() if len(losses) else empty,
                to_positive.mean() if len(losses) else empty,
                to_negative.mean() if len(losses) else empty,
                # the diagonal is not exactly zero in cdist's inner-product formula
                (distances.sum() - distances.diagonal().sum()) / (batch * (batch - 1)),
            ]
        ).tolist()
        names = (
            "num_triplets",
            "active_fraction",
            "mean_positive_distance",
            "mean_negative_distance",
            "mean_pairwise_distance",
        )
        self.stats = dict(zip(names, values))
        if self.stats["mean_pairwise_distance"] < self.collapse_threshold:
            warnings.warn(
                f"triplet embeddings collapsed: mean pairwise distance "
                f"{self.stats['mean_pairwise_distance']:.3g} < collapse_threshold "
                f"{self.collapse_threshold:g}; the loss sits at the margin and gives no useful "
                "gradient (lower the learning rate, use semi_hard mining, or normalise inputs)",
                RuntimeWarning,
                stacklevel=3,
            )
        elif not self.stats["num_triplets"] and self.mining != "semi_hard":
            warnings.warn(
                "no triplet could be formed: no class appears twice in this batch; draw batches "
                "with ClassBalancedBatchSampler so every batch holds positives",
                RuntimeWarning,
                stacklevel=3,
            )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"
