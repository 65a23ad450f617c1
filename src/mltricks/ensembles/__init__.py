"""Ensembles in one network: MIMO subnetworks and Monte Carlo dropout, with shared metrics.

The family's one contract: every ensemble returns its members' outputs stacked first, as
``(M, B, ...)`` (M members or samples, B examples; logits ``(M, B, num_classes)`` for
classifiers), and every metric in ``mltricks.ensembles.metrics`` reads member probabilities
``(M, B, K)`` (``logits.softmax(-1)``). A single model fits the same functions as M = 1
(``probs[None]``), and a deep ensemble of separately trained models is
``torch.stack([model(x) for model in models])``.
"""

from mltricks.ensembles.mc_dropout import MCDropout
from mltricks.ensembles.metrics import (
    brier_score,
    disagreement,
    ensemble_accuracy,
    ensemble_metrics,
    expected_calibration_error,
    member_accuracy,
    mutual_information,
    negative_log_likelihood,
    predictive_entropy,
)
from mltricks.ensembles.mimo import MIMO, mimo_loss
from mltricks.ensembles.mimo_batches import MIMOBatchSampler, MIMODataset, mimo_loader

__all__ = [
    "MIMO",
    "MCDropout",
    "MIMOBatchSampler",
    "MIMODataset",
    "brier_score",
    "disagreement",
    "ensemble_accuracy",
    "ensemble_metrics",
    "expected_calibration_error",
    "member_accuracy",
    "mimo_loader",
    "mimo_loss",
    "mutual_information",
    "negative_log_likelihood",
    "predictive_entropy",
]
