"""Quality and uncertainty of an ensemble's predictions, shared by every ensemble in the family.

Every function takes member probabilities ``probs`` of shape ``(M, B, K)`` (M members or
samples, B examples, K classes; ``logits.softmax(-1)`` of any ensemble's output) and, where
needed, ``targets`` ``(B,)``. The ensemble's prediction is the mean of its members'
probabilities. A single model is the ensemble with M = 1: ``probs[None]``.

With ``p = probs.mean(0)`` and ``H`` the entropy in nats:

- accuracy: share of ``argmax p`` equal to the target;
- negative log-likelihood: ``mean_b -log p[b, y_b]``;
- Brier score: ``mean_b sum_k (p[b, k] - onehot(y_b)[k])^2`` (0 best, 2 worst);
- expected calibration error: binned L1 gap between confidence and accuracy (torchmetrics' bins);
- predictive entropy: ``H(p)`` per example (total uncertainty);
- mutual information: ``H(p) - mean_m H(probs[m])`` per example (the members' disagreement
  about the distribution, "epistemic" uncertainty; 0 when all members agree);
- disagreement: share of examples on which two members' argmax differ, averaged over all pairs;
- member accuracy: each member's own accuracy ``(M,)``.
"""

from __future__ import annotations

import torch

from mltricks._utils.checks import check_number

_TINY = 1e-12  # floor of probabilities under a log


def _check(probs: torch.Tensor, targets: torch.Tensor | None = None) -> None:
    if not isinstance(probs, torch.Tensor) or probs.dim() != 3:
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(
            f"probs must be member probabilities (M, B, K); got {shape} (a single model's "
            "(B, K) probabilities are probs[None])"
        )
    sums = probs.sum(-1)
    if (probs < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise ValueError(
            "probs must be probabilities that sum to 1 over the last dimension (did you pass "
            "logits? use logits.softmax(-1))"
        )
    if targets is not None and (targets.shape != probs.shape[1:2]):
        raise ValueError(
            f"targets must have shape (B,) = ({probs.shape[1]},); got {tuple(targets.shape)}"
        )


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(_TINY).log()).sum(-1)


def ensemble_accuracy(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Accuracy of the mean prediction."""
    _check(probs, targets)
    return float((probs.mean(0).argmax(-1) == targets).float().mean())


def negative_log_likelihood(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean negative log-likelihood (nats) of the targets under the mean prediction."""
    _check(probs, targets)
    likelihood = probs.mean(0).gather(1, targets[:, None]).squeeze(1)
    return float(-likelihood.clamp_min(_TINY).log().mean())


def brier_score(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over examples of the squared distance between the mean prediction and the one-hot
    target, summed over classes."""
    _check(probs, targets)
    mean = probs.mean(0)
    onehot = torch.nn.functional.one_hot(targets, mean.shape[-1]).to(mean.dtype)
    return float(((mean - onehot) ** 2).sum(-1).mean())


def expected_calibration_error(
    probs: torch.Tensor, targets: torch.Tensor, *, num_bins: int = 15
) -> float:
    """Expected calibration error of the mean prediction: ``num_bins`` equal-width confidence
    bins, the gap between mean confidence and accuracy in each, weighted by its share of the
    examples (L1; the bins of torchmetrics' ``multiclass_calibration_error``)."""
    _check(probs, targets)
    check_number("num_bins", num_bins, low=1, integer=True)
    confidence, predicted = probs.mean(0).max(-1)
    correct = (predicted == targets).to(confidence.dtype)
    edges = torch.linspace(0, 1, num_bins + 1, dtype=confidence.dtype, device=confidence.device)
    # bin b holds [edge_b, edge_b+1); a confidence of exactly 1 gets a slot of its own
    bins = torch.bucketize(confidence, edges, right=True) - 1
    gaps = confidence.new_zeros(num_bins + 1).scatter_add_(0, bins, confidence - correct)
    # share_b * |conf_b - acc_b| = |sum over the bin of (confidence - correct)| / B
    return float(gaps.abs().sum() / confidence.numel())


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the mean prediction, per example ``(B,)``."""
    _check(probs)
    return _entropy(probs.mean(0))


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """Entropy of the mean minus the mean of the members' entropies, per example ``(B,)``."""
    _check(probs)
    # clamp: rounding can make it a hair negative when all members agree
    return (_entropy(probs.mean(0)) - _entropy(probs).mean(0)).clamp_min(0.0)


def disagreement(probs: torch.Tensor) -> float:
    """Share of examples where two members' top classes differ, averaged over all member pairs
    (0 for a single member)."""
    _check(probs)
    num_members = probs.shape[0]
    if num_members == 1:
        return 0.0
    # n_k members pick class k: n_k (n_k - 1) of the M (M - 1) ordered pairs agree on it
    counts = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).sum(0).double()
    agreeing = (counts * (counts - 1)).sum(-1) / (num_members * (num_members - 1))  # (B,)
    return float(1.0 - agreeing.mean())


def member_accuracy(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's accuracy ``(M,)``."""
    _check(probs, targets)
    return (probs.argmax(-1) == targets).float().mean(1)


def ensemble_metrics(
    probs: torch.Tensor, targets: torch.Tensor, *, num_bins: int = 15
) -> dict[str, float]:
    """All the metrics above as floats (entropy and mutual information averaged over examples;
    ``member_accuracy`` is the members' mean accuracy)."""
    return {
        "accuracy": ensemble_accuracy(probs, targets),
        "nll": negative_log_likelihood(probs, targets),
        "brier": brier_score(probs, targets),
        "ece": expected_calibration_error(probs, targets, num_bins=num_bins),
        "entropy": float(predictive_entropy(probs).mean()),
        "mutual_information": float(mutual_information(probs).mean()),
        "disagreement": disagreement(probs),
        "member_accuracy": float(member_accuracy(probs, targets).mean()),
    }
