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

``mine_dense`` gives the same choice in a dense layout (a mask over anchors, pairs or triplets)
whose size does not depend on the batch's values, so that ``TripletMarginLoss`` never waits for
the device; ``mine_from_distances`` turns it into index triplets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import torch_generator

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

MINING = ("hard", "semi_hard", "all", "random")


def check_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is ``(B, D)`` floating point and finite,
    ``labels`` is ``(B,)`` integers and the batch holds at least two classes (a negative needs
    another class).

    The checks on the values (finite embeddings, two classes) read the tensors: on the CPU
    they raise at once; on an accelerator they are asynchronous device assertions (as PyTorch's
    own index checks), so that a training step never waits for the device.
    """
    check_embeddings(embeddings, values=False)
    check_labels(labels, len(embeddings))
    _check_values(embeddings, labels)


def check_embeddings(embeddings: torch.Tensor, *, values: bool = True) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is a ``(B, D)`` floating-point tensor (and,
    with ``values``, finite: see ``check_batch`` for how the values are read)."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else None
        raise ValueError(f"embeddings must be a (B, D) tensor; got shape {shape}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point; got dtype {embeddings.dtype}")
    if values:
        _check_values(embeddings, None)


def _check_values(embeddings: torch.Tensor, labels: torch.Tensor | None) -> None:
    finite = torch.isfinite(embeddings).all()
    ok = finite
    if labels is not None:
        two_classes = (labels != labels[0]).any() if len(labels) else finite.new_zeros(())
        ok = finite & two_classes
    if embeddings.device.type != "cpu":
        torch._assert_async(finite, "embeddings must be finite (no NaN or inf)")
        if labels is not None:
            torch._assert_async(ok, "a triplet batch needs at least two classes")
        return
    if ok:  # the one read of the values
        return
    if not finite:
        rows = (~torch.isfinite(embeddings)).any(1).nonzero().squeeze(1)
        raise ValueError(
            f"embeddings must be finite; rows {rows[:10].tolist()}"
            f"{' ...' if len(rows) > 10 else ''} hold NaN or inf (a diverged network, or a "
            "learning rate too high)"
        )
    assert labels is not None
    found = "no samples" if len(labels) == 0 else f"only class {int(labels[0])}"
    raise ValueError(
        f"a triplet batch needs at least two classes (negatives); got {found}; use "
        "ClassBalancedBatchSampler to draw batches that hold several classes"
    )


def check_labels(labels: torch.Tensor, size: int) -> None:
    """Raise ``ValueError`` unless ``labels`` is a ``(size,)`` tensor of integer class ids."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else None
        raise ValueError(f"labels must be a (B,) tensor; got shape {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer class ids; got dtype {labels.dtype}")
    if len(labels) != size:
        raise ValueError(
            f"labels and embeddings must have the same length; got {len(labels)} labels for "
            f"{size} embeddings"
        )


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(B, B)`` between the rows of ``embeddings`` ``(B, D)``.

    ``torch.cdist`` computes them from inner products for large batches, which loses precision
    when the embeddings sit far from the origin; distances do not change under a shift, so the
    batch mean is subtracted first. ``cdist`` also gives a zero gradient where two embeddings
    coincide, where a plain ``sqrt`` of squared distances would give NaN. Half-precision
    embeddings (float16, bfloat16) are computed in float32: their rounding (about 1e-3
    relative) would otherwise swamp the gaps that mining compares.
    """
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    centered = embeddings - embeddings.mean(0, keepdim=True)
    return torch.cdist(centered, centered)


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positive mask, negative mask


class DenseTriplets(NamedTuple):
    """The triplets a miner picks, laid out densely so that no step needs their number.

    ``positive`` and ``negative`` index the batch and broadcast against ``valid``; an entry of
    ``valid`` marks a triplet of the set. Layouts: ``hard``/``random``: ``(B,)`` per anchor;
    ``semi_hard``: ``(B, B)`` per anchor-positive pair (``positive`` is None: the column is
    the positive); ``all``: ``valid`` ``(B, B, B)`` over (anchor, positive, negative) and no
    index tensors.
    """

    positive: torch.Tensor | None
    negative: torch.Tensor | None
    valid: torch.Tensor


def _hard(distances: torch.Tensor, labels: torch.Tensor, **_: object) -> DenseTriplets:
    same = labels[:, None] == labels[None, :]
    # where, not masked_fill: no copy of the (B, B) matrix before the fill
    positives = torch.where(same, distances, -torch.inf).fill_diagonal_(-torch.inf)
    farthest_distance, farthest = positives.max(1)
    nearest_distance, nearest = torch.where(same, torch.inf, distances).min(1)
    # an anchor without a positive (negative) sees only -inf (inf)
    valid = (farthest_distance > -torch.inf) & (nearest_distance < torch.inf)
    return DenseTriplets(farthest, nearest, valid)


def _semi_hard(
    distances: torch.Tensor, labels: torch.Tensor, *, margin: float, **_: object
) -> DenseTriplets:
    # per anchor, negatives sorted by distance (others at +inf); the nearest negative farther
    # than d(a, p) is the first sorted entry above it: (B, B) memory, not (pairs, B)
    positive, negative = _masks(labels)
    sorted_distances, order = distances.masked_fill(~negative, torch.inf).sort(dim=1, stable=True)
    first_beyond = torch.searchsorted(sorted_distances, distances, right=True)  # (B, B)
    first_beyond = first_beyond.clamp_(max=len(labels) - 1)
    candidate = sorted_distances.gather(1, first_beyond)
    inside = (candidate > distances) & (candidate < distances + margin)  # inf is never inside
    return DenseTriplets(None, order.gather(1, first_beyond), positive & inside)


def _all(distances: torch.Tensor, labels: torch.Tensor, **_: object) -> DenseTriplets:
    positive, negative = _masks(labels)
    return DenseTriplets(None, None, positive[:, :, None] & negative[:, None, :])


def _random(
    distances: torch.Tensor,
    labels: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    **_: object,
) -> DenseTriplets:
    positive, negative = _masks(labels)
    # the argmax of independent uniform scores over the allowed entries is a uniform draw
    scores = torch.rand(distances.shape, generator=generator, device=distances.device)
    positives = scores.masked_fill(~positive, -1.0).argmax(1)
    scores = torch.rand(distances.shape, generator=generator, device=distances.device)
    negatives = scores.masked_fill(~negative, -1.0).argmax(1)
    return DenseTriplets(positives, negatives, positive.any(1) & negative.any(1))


_MINERS: dict[str, Callable[..., DenseTriplets]] = {
    "hard": _hard,
    "semi_hard": _semi_hard,
    "all": _all,
    "random": _random,
}


def mine_dense(
    distances: torch.Tensor,
    labels: torch.Tensor,
    mining: str,
    *,
    margin: float = 1.0,
    generator: torch.Generator | None = None,
) -> DenseTriplets:
    """Triplets chosen by ``mining`` in the dense layout of ``DenseTriplets`` (no host sync)."""
    check_choice("mining", mining, MINING)
    with torch.no_grad():
        return _MINERS[mining](distances.detach(), labels, margin=margin, generator=generator)


@renamed_argument("generator", "random_state")
def mine_from_distances(
    distances: torch.Tensor,
    labels: torch.Tensor,
    mining: str,
    *,
    margin: float = 1.0,
    random_state: int | torch.Generator | None = None,
) -> Triplets:
    """Triplets chosen by ``mining`` from a ``(B, B)`` distance matrix (read without gradient).

    Args:
        distances: ``(B, B)`` pairwise distances.
        labels: ``(B,)`` integer class ids.
        mining: one of ``MINING``.
        margin: the triplet margin (used by ``"semi_hard"``).
        random_state: randomness of ``"random"`` mining: an int seed, a ``torch.Generator`` on
            the distances' device, or None (torch's global generator). ``generator=`` is its
            deprecated name.

    Returns:
        ``(anchor_idx, positive_idx, negative_idx)``, each ``(T,)`` int64, ordered by anchor
        (then positive).
    """
    generator = None
    if mining == "random" and random_state is not None:
        generator = torch_generator(random_state, distances.device)
    dense = mine_dense(distances, labels, mining, margin=margin, generator=generator)
    if mining == "all":
        anchor, positive, negative = dense.valid.nonzero(as_tuple=True)
        return anchor, positive, negative
    if mining == "semi_hard":
        assert dense.negative is not None
        anchor, positive = dense.valid.nonzero(as_tuple=True)
        return anchor, positive, dense.negative[anchor, positive]
    assert dense.positive is not None and dense.negative is not None
    anchor = dense.valid.nonzero().squeeze(1)
    return anchor, dense.positive[anchor], dense.negative[anchor]


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
    labels = labels.to(embeddings.device) if isinstance(labels, torch.Tensor) else labels
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
    labels = labels.to(embeddings.device) if isinstance(labels, torch.Tensor) else labels
    check_batch(embeddings, labels)
    distances = pairwise_distances(embeddings.detach())
    return mine_from_distances(distances, labels, "semi_hard", margin=margin)
