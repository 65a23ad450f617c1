"""Semi-supervised learning: estimators that use unlabeled samples (``-1`` labels) and losses
computed on unlabeled data."""

from smallml.semi_supervised.cluster_then_label import ClusterThenLabel
from smallml.semi_supervised.consistency_loss import ConsistencyLoss, consistency_loss
from smallml.semi_supervised.mutual_exclusivity_loss import (
    MutualExclusivityLoss,
    mutual_exclusivity_loss,
)
from smallml.semi_supervised.self_training import SelfTrainingClassifier
from smallml.semi_supervised.stability_loss import StabilityLoss, stability_loss

__all__: list[str] = [
    "ClusterThenLabel",
    "ConsistencyLoss",
    "MutualExclusivityLoss",
    "SelfTrainingClassifier",
    "StabilityLoss",
    "consistency_loss",
    "mutual_exclusivity_loss",
    "stability_loss",
]
