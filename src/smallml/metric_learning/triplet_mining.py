"""Triplet mining: which ``(anchor, positive, negative)`` index triplets of a batch to train on.

Every miner reads one ``(B, B)`` Euclidean distance matrix and the label-equality mask and
returns three index tensors of equal length ``T``; there is no Python loop over anchors. A
positive shares the anchor's label (and is not the anchor itself), a negative has another label.

- ``hard``: per anchor, the farthest positive and the nearest negative ("batch hard",
  Hermans et al. 2017, https://arxiv.org/abs/1703.07737).
- ``semi_hard``: per anchor-positive pair, the nearest negative that is farther than the positive
  but still inside the margin, ``d(a, p) < d(a, n) < d(a, p) + margin`` (FaceNet, Schroff et al.
  2015, https://arxiv.org/abs/1503.03832); pairs without such a negative are skipped.
- ``all``: every valid triplet (memory grows as ``B^3``: for batches of a few hundred).
- ``random``: per anchor, one positive and one negative drawn uniformly.

Anchors without a positive or without a negative in the batch are skipped by every miner.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from smallml._utils.checks import check_choice, check_number

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

MINING = ("hard", "semi_hard", "all", "random")


def check_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is ``(B, D)``, ``labels`` is ``(B,)`` integers
    and the batch holds at least two classes (a negative needs another class)."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else None
        raise ValueError(f"embeddings must be a (B, D) tensor; got shape {shape}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else None
        raise ValueError(f"labels must be a (B,) tensor; got shape {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer class ids; got dtype {labels.dtype}")
    if len(labels) != len(embeddings):
        raise ValueError(
            f"labels and embeddings must have the same length; got {len(labels)} labels for "
            f"{len(embeddings)} embeddings"
        )
    if len(labels) == 0 or bool((labels == labels[0]).all()):
        found = "no samples" if len(labels) == 0 else f"only class {int(labels[0])}"
        raise ValueError(
            f"a triplet batch needs at least two classes (negatives); got {found}; use "
            "ClassBalancedBatchSampler to draw batches that hold several classes"
        )


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(B, B)`` between the rows of ``embeddings`` ``(B, D)``.

    ``torch.cdist`` computes them from inner products for large batches, which loses precision
    when the embeddings sit far from the origin; distances do not change under a shift, so the
    batch mean is subtracted first. ``cdist`` also gives a zero gradient where two embeddings
    coincide, where a plain ``sqrt`` of squared distances would give NaN.
    """
    centered = embeddings - embeddings.mean(0, keepdim=True)
    return torch.cdist(centered, centered)


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positive mask, negative mask


def _hard(distances: torch.Tensor, labels: torch.Tensor, **_: object) -> Triplets:
    positive, negative = _masks(labels)
    farthest = distances.masked_fill(~positive, -torch.inf).argmax(1)
    nearest = distances.masked_fill(~negative, torch.inf).argmin(1)
    anchors = (positive.any(1) & negative.any(1)).nonzero().squeeze(1)
    return anchors, farthest[anchors], nearest[anchors]


def _semi_hard(
    distances: torch.Tensor, labels: torch.Tensor, *, margin: float, **_: object
) -> Triplets:
    positive, negative = _masks(labels)
    anchors, positives = positive.nonzero(as_tuple=True)  # every anchor-positive pair
    to_positive = distances[anchors, positives][:, None]  # (P, 1)
    to_all = distances[anchors]  # (P, B)
    inside = negative[anchors] & (to_all > to_positive) & (to_all < to_positive + margin)
    nearest = to_all.masked_fill(~inside, torch.inf).argmin(1)
    keep = inside.any(1)
    return anchors[keep], positives[keep], nearest[keep]


def _all(distances: torch.Tensor, labels: torch.Tensor, **_: object) -> Triplets:
    positive, negative = _masks(labels)
    valid = positive[:, :, None] & negative[:, None, :]  # (B, B, B): anchor, positive, negative
    anchor, positive_index, negative_index = valid.nonzero(as_tuple=True)
    return anchor, positive_index, negative_index


def _random(
    distances: torch.Tensor,
    labels: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    **_: object,
) -> Triplets:
    positive, negative = _masks(labels)
    # the argmax of independent uniform scores over the allowed entries is a uniform draw
    scores = torch.rand(distances.shape, generator=generator, device=distances.device)
    positives = scores.masked_fill(~positive, -1.0).argmax(1)
    scores = torch.rand(distances.shape, generator=generator, device=distances.device)
    negatives = scores.masked_fill(~negative, -1.0).argmax(1)
    anchors = (positive.any(1) & negative.any(1)).nonzero().squeeze(1)
    return anchors, positives[anchors], negatives[anchors]


_MINERS: dict[str, Callable[..., Triplets]] = {
    "hard": _hard,
    "semi_hard": _semi_hard,
    "all": _all,
    "random": _random,
}


def mine_from_distances(
    distances: torch.Tensor,
    labels: torch.Tensor,
    mining: str,
    *,
    margin: float = 1.0,
    generator: torch.Generator | None = None,
) -> Triplets:
    """Triplets chosen by ``mining`` from a ``(B, B)`` distance matrix (read without gradient)."""
    check_choice("mining", mining, MINING)
    with torch.no_grad():
        return _MINERS[mining](distances.detach(), labels, margin=margin, generator=generator)


def hard_triplets(embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
    """Batch-hard triplets: per anchor the farthest positive and the nearest negative.

    Args:
        embeddings: ``(B, D)`` embeddings.
        labels: ``(B,)`` integer class ids, at least two classes.

    Returns:
        ``(anchor_idx, positive_idx, negative_idx)``, each ``(T,)`` int64, one triplet per anchor
        that has both a positive and a negative in the batch.

    Example:
        >>> embeddings = torch.tensor([[0.0], [1.0], [3.0], [1.5]])
        >>> anchor, positive, negative = hard_triplets(embeddings, torch.tensor([0, 0, 0, 1]))
        >>> anchor.tolist(), positive.tolist(), negative.tolist()
        ([0, 1, 2], [2, 2, 0], [3, 3, 3])
    """
    check_batch(embeddings, labels)
    return mine_from_distances(pairwise_distances(embeddings.detach()), labels, "hard")


def semi_hard_triplets(
    embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 1.0
) -> Triplets:
    """Semi-hard triplets: per anchor-positive pair, the nearest negative with
    ``d(a, p) < d(a, n) < d(a, p) + margin``; pairs without one are skipped.

    Args:
        embeddings: ``(B, D)`` embeddings.
        labels: ``(B,)`` integer class ids, at least two classes.
        margin: the triplet margin (>= 0).

    Returns:
        ``(anchor_idx, positive_idx, negative_idx)``, each ``(T,)`` int64.
    """
    check_number("margin", margin, low=0.0)
    check_batch(embeddings, labels)
    distances = pairwise_distances(embeddings.detach())
    return mine_from_distances(distances, labels, "semi_hard", margin=margin)
