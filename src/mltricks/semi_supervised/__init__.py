"""Semi-supervised learning: estimators that use unlabeled samples (``-1`` labels) and losses
computed on unlabeled data.

Return convention: estimators are scikit-learn's: ``fit(X, y)`` takes class labels ``>= 0``
(negative labels other than ``-1`` are refused), ``-1`` marking an unlabeled sample, and
returns ``self``; what was learned ends in ``_``; ``predict`` returns labels in the dtype of
``y`` (bool labels come back as bool). Evaluation against hidden labels is the caller's: the
estimators keep what it needs (``SelfTrainingClassifier.first_pass_transduction_``). Losses
are functions with a module twin returning a scalar (``reduction="mean"``, or ``"sum"``) or
the per-sample losses (``reduction="none"``). Randomness comes from ``random_state``.
"""

from mltricks.semi_supervised.cluster_then_label import ClusterThenLabel
from mltricks.semi_supervised.consistency_loss import ConsistencyLoss, consistency_loss
from mltricks.semi_supervised.mutual_exclusivity_loss import (
    MutualExclusivityLoss,
    mutual_exclusivity_loss,
)
from mltricks.semi_supervised.self_training import SelfTrainingClassifier
from mltricks.semi_supervised.semi_supervised_step import SemiSupervisedStep, sigmoid_rampup
from mltricks.semi_supervised.stability_loss import StabilityLoss, stability_loss

__all__: list[str] = [
    "ClusterThenLabel",
    "ConsistencyLoss",
    "MutualExclusivityLoss",
    "SelfTrainingClassifier",
    "SemiSupervisedStep",
    "StabilityLoss",
    "consistency_loss",
    "mutual_exclusivity_loss",
    "sigmoid_rampup",
    "stability_loss",
]
