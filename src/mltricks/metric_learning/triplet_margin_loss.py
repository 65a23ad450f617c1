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

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import torch_generator
from mltricks.metric_learning.triplet_mining import (
    MINING,
    Triplets,
    check_batch,
    check_embeddings,
    check_labels,
    mine_dense,
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
    """Triplet margin loss over the triplets a miner picks in each batch, or over given ones.

    One ``(B, B)`` distance matrix per batch serves the mining (read without gradient) and, for
    the miners that pick per pair or per triplet, the loss; the per-anchor miners (``hard``,
    ``random``) take the gradient of their 2B distances directly, which spares the backward
    pass through the matrix. The mined triplets
    stay in a dense layout (a mask over anchors, pairs or triplets, see
    ``triplet_mining.mine_dense``), so a call never waits for the device: no step needs the
    number of triplets on the host. Precomputed triplets (``indices_tuple``, as
    pytorch-metric-learning's miners return them) replace the mining.

    After each call, ``stats`` holds the batch's ``num_triplets``, ``active_fraction`` (share of
    triplets with a positive loss), ``mean_positive_distance``, ``mean_negative_distance`` and
    ``mean_pairwise_distance``. They stay on the device until ``stats`` is read: the read is
    the one host sync, and it also runs two checks. When the mean pairwise distance is below
    ``collapse_threshold`` a ``RuntimeWarning`` says the embeddings have collapsed to a point
    (the loss then sits at ``margin`` and gives no useful gradient); when the batch gave no
    triplet, a ``RuntimeWarning`` says why.

    Half-precision embeddings (float16, bfloat16) get their distances and loss in float32.

    Args:
        margin: the wanted gap between positive and negative distance (>= 0).
        mining: ``"hard"`` (farthest positive, nearest negative per anchor), ``"semi_hard"``
            (per anchor-positive pair, the nearest negative beyond the positive inside the
            margin), ``"all"`` (every valid triplet) or ``"random"`` (one random positive and
            negative per anchor); see ``mltricks.metric_learning.triplet_mining``.
        collapse_threshold: mean pairwise distance, in embedding units, below which the
            collapse warning fires (0 disables it).
        random_state: randomness of ``"random"`` mining: an int (a generator seeded with it on
            the embeddings' device at the first call; its stream then continues), a
            ``torch.Generator`` on the embeddings' device, or None (torch's global generator).
            ``generator=`` is its deprecated name.

    Shapes:
        ``forward(embeddings (B, D), labels (B,), indices_tuple=None) -> scalar``, the mean
        over the triplets (0 when there is none). ``indices_tuple`` is ``(anchor_idx,
        positive_idx, negative_idx)``, three int64 ``(T,)`` tensors into the batch; with it,
        ``labels`` may be None.

    Example:
        >>> loss_fn = TripletMarginLoss(margin=1.0, mining="hard")
        >>> embeddings = torch.randn(8, 2, requires_grad=True)
        >>> loss = loss_fn(embeddings, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
        >>> loss.backward(); loss_fn.stats["num_triplets"]
        8.0
        >>> triplets = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 5]))
        >>> given = loss_fn(embeddings, indices_tuple=triplets)  # no mining
    """

    @renamed_argument("generator", "random_state")
    def __init__(
        self,
        margin: float = 1.0,
        mining: str = "hard",
        *,
        collapse_threshold: float = 1e-3,
        random_state: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_number("margin", margin, low=0.0)
        check_choice("mining", mining, MINING)
        check_number("collapse_threshold", collapse_threshold, low=0.0)
        if random_state is not None and not isinstance(random_state, torch.Generator):
            torch_generator(random_state)  # checks the seed now, not at the first call
        self.margin = float(margin)
        self.mining = mining
        self.collapse_threshold = float(collapse_threshold)
        self.random_state = random_state
        self._generator = random_state if isinstance(random_state, torch.Generator) else None
        self._pending: torch.Tensor | None = None  # (5,) statistics, on the device
        self._stats: dict[str, float] = {}

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: Triplets | None = None,
    ) -> torch.Tensor:
        if indices_tuple is not None:
            return self._given(embeddings, labels, indices_tuple)
        if labels is None:
            raise ValueError("labels are needed to mine triplets; pass labels or indices_tuple")
        labels = labels.to(embeddings.device) if isinstance(labels, torch.Tensor) else labels
        check_batch(embeddings, labels)
        per_anchor = self.mining in ("hard", "random")
        # one triplet per anchor needs the gradient of 2B distances only: computed directly
        # below, rather than through the (B, B) matrix, whose backward costs more than all else
        with torch.set_grad_enabled(not per_anchor and torch.is_grad_enabled()):
            distances = pairwise_distances(embeddings)  # (B, B)
        dense = mine_dense(
            distances, labels, self.mining, margin=self.margin, generator=self._random(distances)
        )
        if per_anchor:  # hard, random: (B,) per anchor
            assert dense.positive is not None and dense.negative is not None
            points = embeddings.float() if distances.dtype != embeddings.dtype else embeddings
            to_positive = torch.linalg.vector_norm(points - points[dense.positive], dim=1)
            to_negative = torch.linalg.vector_norm(points - points[dense.negative], dim=1)
        elif dense.negative is not None:  # semi_hard: (B, B) per anchor-positive pair
            to_positive, to_negative = distances, distances.gather(1, dense.negative)
        else:  # all: (B, B, B) per anchor, positive, negative
            to_positive, to_negative = distances[:, :, None], distances[:, None, :]
        losses = F.relu(to_positive - to_negative + self.margin)
        # where, not a product: a masked entry gives an exact zero gradient
        losses = torch.where(dense.valid, losses, 0.0)
        count = dense.valid.sum()
        self._keep(distances, to_positive, to_negative, losses, dense.valid, count)
        return losses.sum() / count.clamp(min=1)

    def _given(
        self, embeddings: torch.Tensor, labels: torch.Tensor | None, indices_tuple: Triplets
    ) -> torch.Tensor:
        if not isinstance(indices_tuple, tuple | list) or len(indices_tuple) != 3:
            raise ValueError(
                "indices_tuple must be (anchor_idx, positive_idx, negative_idx), three index "
                f"tensors; got {type(indices_tuple).__name__} of length "
                f"{len(indices_tuple) if isinstance(indices_tuple, tuple | list) else '?'} "
                "(pair miners' 4-tuples are not triplets)"
            )
        check_embeddings(embeddings)
        if labels is not None:
            check_labels(labels, len(embeddings))
        index = []
        for name, tensor in zip(("anchor_idx", "positive_idx", "negative_idx"), indices_tuple):
            if (
                not isinstance(tensor, torch.Tensor)
                or tensor.ndim != 1
                or tensor.is_floating_point()
            ):
                raise ValueError(
                    f"indices_tuple's {name} must be a 1-d integer tensor; got {tensor!r}"
                )
            index.append(tensor.to(embeddings.device))
        if not len(index[0]) == len(index[1]) == len(index[2]):
            raise ValueError(
                "indices_tuple's three tensors must have one length; got "
                f"{len(index[0])}, {len(index[1])}, {len(index[2])}"
            )
        anchor, positive, negative = index
        distances = pairwise_distances(embeddings)
        to_positive, to_negative = distances[anchor, positive], distances[anchor, negative]
        losses = F.relu(to_positive - to_negative + self.margin)
        valid = torch.ones_like(losses, dtype=torch.bool)
        count = torch.tensor(len(losses), device=distances.device)
        self._keep(distances, to_positive, to_negative, losses, valid, count)
        return _reduce(losses, "mean")

    def _random(self, distances: torch.Tensor) -> torch.Generator | None:
        if self.mining != "random" or self.random_state is None:
            return None
        if self._generator is None:
            self._generator = torch_generator(self.random_state, distances.device)
        return self._generator

    def _keep(
        self,
        distances: torch.Tensor,
        to_positive: torch.Tensor,
        to_negative: torch.Tensor,
        losses: torch.Tensor,
        valid: torch.Tensor,
        count: torch.Tensor,
    ) -> None:
        """Store the statistics as one device tensor; ``stats`` copies it when it is read."""
        with torch.no_grad():
            batch = len(distances)
            per_triplet = valid.to(distances.dtype)
            # sums over the triplets through broadcasting: per anchor, pair or triplet
            denominator = count.clamp(min=1).to(distances.dtype)
            self._pending = torch.stack(
                [
                    count.to(distances.dtype),
                    (losses > 0).sum().to(distances.dtype) / denominator,
                    (to_positive * per_triplet).sum() / denominator,
                    (to_negative * per_triplet).sum() / denominator,
                    # the diagonal is not exactly zero in cdist's inner-product formula
                    (distances.sum() - distances.diagonal().sum()) / (batch * (batch - 1)),
                ]
            )
        self._stats = {}

    @property
    def stats(self) -> dict[str, float]:
        """The last call's statistics (one device-to-host copy, then the checks)."""
        if self._pending is not None:
            self._stats = dict(zip(STATS, self._pending.tolist()))
            self._pending = None
            self._check(self._stats)
        return self._stats

    def _check(self, stats: dict[str, float]) -> None:
        if stats["mean_pairwise_distance"] < self.collapse_threshold:
            warnings.warn(
                f"triplet embeddings collapsed: mean pairwise distance "
                f"{stats['mean_pairwise_distance']:.3g} < collapse_threshold "
                f"{self.collapse_threshold:g}; the loss sits at the margin and gives no useful "
                "gradient (lower the learning rate, use semi_hard mining, or normalise inputs)",
                RuntimeWarning,
                stacklevel=3,
            )
        elif not stats["num_triplets"]:
            reason = {
                "semi_hard": "no negative lies between its positive and positive + margin "
                "(the embeddings already satisfy the margin, or the margin is too small): "
                "the loss is 0 and gives no gradient; try hard mining",
            }.get(
                self.mining,
                "no class appears twice in this batch; draw batches with "
                "ClassBalancedBatchSampler so every batch holds positives",
            )
            warnings.warn(f"no triplet could be formed: {reason}", RuntimeWarning, stacklevel=3)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"


STATS = (
    "num_triplets",
    "active_fraction",
    "mean_positive_distance",
    "mean_negative_distance",
    "mean_pairwise_distance",
)
