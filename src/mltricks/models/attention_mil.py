"""Attention-based deep multiple instance learning (Ilse, Tomczak and Welling 2018,
http://proceedings.mlr.press/v80/ilse18a/ilse18a.pdf), and mean / max pooling baselines.

A bag of instances is embedded instance by instance (``h_k``), pooled into one vector and
classified. Attention pooling weighs the instances:

    a_k = softmax_k(w^T tanh(V h_k))                       (attention)
    a_k = softmax_k(w^T (tanh(V h_k) * sigmoid(U h_k)))    (gated attention)
    z = sum_k a_k h_k

so ``a_k`` tells which instances made the bag's label. Contract shared by ``AttentionMIL`` and
``PoolingMIL``: ``forward(bag)`` with one bag ``(N, ...)`` returns a scalar logit and weights
``(N,)``; ``forward(bags, mask)`` with a padded batch ``(B, N, ...)`` and a bool mask ``(B, N)``
(True on real instances, e.g. from ``mltricks.data.pad_bags``) returns ``(B,)`` logits and
``(B, N)`` weights that sum to 1 over each bag's real instances and are 0 on padding. Only real
instances go through the feature extractor, so a padded batch gives the same outputs as its bags
one at a time (in eval mode; in training mode BatchNorm sees a different batch either way).
"""

from __future__ import annotations

import torch
from torch import nn

from mltricks._utils.checks import check_choice, check_number

POOLINGS = ("mean", "max")


def attention_pool(
    features: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of ``scores`` over each bag's real instances, and the weighted sum of features.

    Args:
        features: ``(B, N, D)`` instance embeddings.
        scores: ``(B, N)`` attention scores.
        mask: ``(B, N)`` bool, True on real instances; all real when None.

    Returns:
        ``pooled`` ``(B, D)`` and ``attention`` ``(B, N)`` (exactly 0 on padding).
    """
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    attention = torch.softmax(scores, dim=1)
    return torch.einsum("bn,bnd->bd", attention, features), attention


class AttentionMIL(nn.Module):
    """Bag classifier with (gated) attention pooling over instance embeddings.

    Args:
        feature_extractor: maps a batch of instances ``(M, ...)`` to ``(M, feature_dim)``
            (e.g. ``SmallCNN(...).features``).
        feature_dim: size of the instance embeddings.
        hidden_dim: size of the attention network's hidden layer (``V``, ``U``).
        gated: use the gated attention of Ilse et al. (a sigmoid gate ``U``).

    Example:
        >>> import torch
        >>> from mltricks.models import AttentionMIL, SmallCNN
        >>> model = AttentionMIL(SmallCNN(1, 2, width=16).features, 32, gated=True)
        >>> logit, attention = model(torch.rand(7, 1, 8, 8))  # one bag of 7 instances
        >>> logit.shape, attention.shape
        (torch.Size([]), torch.Size([7]))
    """

    def __init__(
        self,
        feature_extractor: nn.Module,
        feature_dim: int,
        *,
        hidden_dim: int = 128,
        gated: bool = False,
    ) -> None:
        super().__init__()
        check_number("feature_dim", feature_dim, low=1, integer=True)
        check_number("hidden_dim", hidden_dim, low=1, integer=True)
        self.feature_extractor = feature_extractor
        self.feature_dim, self.gated = feature_dim, gated
        self.attention_v = nn.Linear(feature_dim, hidden_dim)
        self.attention_u = nn.Linear(feature_dim, hidden_dim) if gated else None
        self.attention_w = nn.Linear(hidden_dim, 1)
        self.classifier = nn.Linear(feature_dim, 1)

    def attention_scores(self, features: torch.Tensor) -> torch.Tensor:
        """``w^T tanh(V h)`` (times ``sigmoid(U h)`` when gated): ``(..., D)`` to ``(...)``."""
        hidden = torch.tanh(self.attention_v(features))
        if self.attention_u is not None:
            hidden = hidden * torch.sigmoid(self.attention_u(features))
        return self.attention_w(hidden).squeeze(-1)

    def forward(
        self, bag: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One bag ``(N, ...)`` -> ``(logit (), attention (N,))``; a padded batch ``(B, N, ...)``
        with ``mask`` ``(B, N)`` -> ``(logits (B,), attention (B, N))``."""
        features, mask, single = instance_features(
            self.feature_extractor, bag, mask, self.feature_dim
        )
        pooled, attention = attention_pool(features, self.attention_scores(features), mask)
        logits = self.classifier(pooled).squeeze(-1)
        return (logits[0], attention[0]) if single else (logits, attention)


class PoolingMIL(nn.Module):
    """Bag classifier with mean or max pooling of the instance embeddings (the baselines of
    Ilse et al.), with the same contract as ``AttentionMIL``.

    The returned weights are each instance's share in the pooled vector: ``1 / n`` for mean
    pooling; for max pooling the share of embedding dimensions where the instance holds the
    maximum (ties go to the first instance).

    Args:
        feature_extractor: maps ``(M, ...)`` to ``(M, feature_dim)``.
        feature_dim: size of the instance embeddings.
        pooling: ``"mean"`` or ``"max"``.
    """

    def __init__(self, feature_extractor: nn.Module, feature_dim: int, *, pooling: str) -> None:
        super().__init__()
        check_number("feature_dim", feature_dim, low=1, integer=True)
        check_choice("pooling", pooling, POOLINGS)
        self.feature_extractor = feature_extractor
        self.feature_dim, self.pooling = feature_dim, pooling
        self.classifier = nn.Linear(feature_dim, 1)

    def forward(
        self, bag: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same shapes as ``AttentionMIL.forward``."""
        features, mask, single = instance_features(
            self.feature_extractor, bag, mask, self.feature_dim
        )
        if self.pooling == "mean":
            weights = mask.float() / mask.sum(1, keepdim=True)
            pooled = torch.einsum("bn,bnd->bd", weights, features)
        else:
            pooled, winner = features.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1)
            wins = torch.nn.functional.one_hot(winner, mask.shape[1]).float()  # (B, D, N)
            weights = wins.mean(1)
        logits = self.classifier(pooled).squeeze(-1)
        return (logits[0], weights[0]) if single else (logits, weights)


def instance_features(
    extractor: nn.Module, bag: torch.Tensor, mask: torch.Tensor | None, feature_dim: int
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Embed the real instances of one bag or of a padded batch.

    Returns ``features`` ``(B, N, D)`` (zeros on padding), ``mask`` ``(B, N)`` and whether the
    input was a single bag (``B = 1`` then).
    """
    single = mask is None
    if mask is None:
        if bag.ndim < 2 or len(bag) == 0:
            raise ValueError(
                f"a bag must be (N, ...) with N >= 1 instances; got shape {tuple(bag.shape)}"
            )
        bag = bag.unsqueeze(0)
        mask = torch.ones(bag.shape[:2], dtype=torch.bool, device=bag.device)
    elif mask.dtype != torch.bool or mask.shape != bag.shape[:2]:
        raise ValueError(
            f"mask must be a bool tensor of shape (B, N) = {tuple(bag.shape[:2])}; got "
            f"{mask.dtype} of shape {tuple(mask.shape)}"
        )
    counts = mask.sum(1)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"bags must not be empty; bags {empty} have no real instance in mask")
    embedded = extractor(bag[mask])  # only the real instances: (M, D)
    if embedded.ndim != 2 or embedded.shape[1] != feature_dim:
        raise ValueError(
            f"feature_extractor must map instances to (M, feature_dim={feature_dim}); got "
            f"{tuple(embedded.shape)}"
        )
    features = embedded.new_zeros(*mask.shape, feature_dim)
    features[mask] = embedded
    return features, mask, single
