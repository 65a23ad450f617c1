"""Tabular techniques with scikit-learn: text features for a table, and feature importance.

Shared contract: scikit-learn's. ``TextStatistics`` is a transformer from ``(n_samples, 2)``
(title, body) texts to ``(n_samples, 9)`` numbers with ``get_feature_names_out``;
``feature_importance`` takes an unfitted estimator and numeric ``(n_samples, n_features)`` data,
fits clones on a split of its own, and returns one ``FeatureImportance`` table.

Return convention: transformers return arrays (scikit-learn's ``transform``); procedures
return one result dataclass (``FeatureImportance``). Randomness comes from ``random_state``
(an int, a ``np.random.RandomState`` or None), as in scikit-learn.
"""

from mltricks.tabular.feature_importance import (
    BINARY_SCORINGS,
    PROBE,
    FeatureImportance,
    feature_importance,
)
from mltricks.tabular.text_statistics import FEATURE_NAMES, TextStatistics

__all__ = [
    "BINARY_SCORINGS",
    "FEATURE_NAMES",
    "PROBE",
    "FeatureImportance",
    "TextStatistics",
    "feature_importance",
]
