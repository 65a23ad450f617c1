"""Feature importance of a fitted-on-the-fly estimator, four ways, in one table.

- impurity importance (mean decrease in impurity, Breiman 2001) of a tree ensemble, with its
  spread over the trees: cheap, computed on the training data, and biased towards features with
  many distinct values;
- permutation importance on held-out data (Breiman 2001; Fisher et al. 2019,
  https://arxiv.org/abs/1801.01489): the score lost when one column is shuffled, mean and
  standard deviation over ``n_repeats`` shuffles;
- the held-out score of the same estimator fitted on each feature alone;
- a random-probe column (Gaussian noise) added to the data: every real feature worth keeping
  should rank above it (Stoppiglia et al., 2003).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import get_scorer
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from mltricks._utils.checks import check_number

PROBE = "random_probe"
# scorers that are defined for two classes only (label 1 is the positive class)
BINARY_SCORINGS = ("f1", "precision", "recall", "roc_auc", "average_precision", "jaccard")


@dataclass(frozen=True)
class FeatureImportance:
    """The table ``feature_importance`` returns: one entry per feature (the probe last).

    ``impurity``/``impurity_std`` are NaN when the estimator has no ``feature_importances_``.
    ``all_features_score`` is the held-out score with every real feature (the probe left out).
    """

    features: tuple[str, ...]
    impurity: np.ndarray
    impurity_std: np.ndarray
    permutation: np.ndarray
    permutation_std: np.ndarray
    single_feature_score: np.ndarray
    all_features_score: float
    scoring: str

    def ranking(self, by: str = "permutation") -> list[str]:
        """Feature names from most to least important by ``permutation``, ``impurity`` or
        ``single_feature_score``."""
        values = {
            "permutation": self.permutation,
            "impurity": self.impurity,
            "single_feature_score": self.single_feature_score,
        }
        if by not in values:
            raise ValueError(f"by must be one of {', '.join(map(repr, values))}; got {by!r}")
        order = np.argsort(-np.nan_to_num(values[by], nan=-np.inf), kind="stable")
        return [self.features[i] for i in order]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per feature, most important (by permutation) first."""
        index = {name: i for i, name in enumerate(self.features)}
        return [
            {
                "feature": name,
                "impurity": float(self.impurity[index[name]]),
                "impurity_std": float(self.impurity_std[index[name]]),
                "permutation": float(self.permutation[index[name]]),
                "permutation_std": float(self.permutation_std[index[name]]),
                "single_feature_score": float(self.single_feature_score[index[name]]),
            }
            for name in self.ranking()
        ]

    def __str__(self) -> str:
        lines = [
            f"{'feature':<28}{'impurity':>16}{'permutation':>18}{'single ' + self.scoring:>14}"
        ]
        for row in self.rows():
            lines.append(
                f"{row['feature']:<28}{row['impurity']:>8.3f} ± {row['impurity_std']:<5.3f}"
                f"{row['permutation']:>10.3f} ± {row['permutation_std']:<5.3f}"
                f"{row['single_feature_score']:>14.3f}"
            )
        lines.append(f"all features: {self.scoring} {self.all_features_score:.3f}")
        return "\n".join(lines)


def _impurity(model: Any, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    final = model[-1] if hasattr(model, "steps") else model
    values = getattr(final, "feature_importances_", None)
    if values is None or len(values) != num_features:
        return np.full(num_features, np.nan), np.full(num_features, np.nan)
    trees = getattr(final, "estimators_", None)
    per_tree = [t.feature_importances_ for t in np.ravel(trees)] if trees is not None else []
    spread = np.std(per_tree, axis=0) if len(per_tree) > 1 else np.zeros(num_features)
    return np.asarray(values, dtype=float), np.asarray(spread, dtype=float)


def feature_importance(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    n_repeats: int = 10,
    random_state: int | np.random.RandomState | None = None,
    scoring: str = "f1",
    test_size: float = 0.25,
    feature_names: Any = None,
) -> FeatureImportance:
    """Impurity, held-out permutation and single-feature importance, with a random probe.

    A random-probe column is appended to ``X``; the data are split into a fitting part and a
    held-out part (stratified for classifiers); a clone of ``estimator`` is fitted on the
    fitting part. ``estimator`` itself is not changed.

    Args:
        estimator: an unfitted scikit-learn estimator or pipeline over numeric features; its
            final step gives the impurity importance when it has ``feature_importances_``.
        X: ``(n_samples, n_features)`` numeric array or DataFrame.
        y: ``(n_samples,)`` targets; binary (0/1) for the binary scorings (``f1`` ...).
        n_repeats: shuffles per feature for the permutation importance.
        random_state: seeds the probe, the split and the shuffles.
        scoring: a scikit-learn scorer name.
        test_size: share of the samples held out.
        feature_names: column names (default: the DataFrame's, else ``x0, x1, ...``).

    Returns:
        ``FeatureImportance`` for the features and ``"random_probe"`` (last).

    Example:
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.ensemble import RandomForestClassifier
        >>> from mltricks.tabular import feature_importance
        >>> X, y = make_classification(n_samples=300, n_features=4, n_informative=1,
        ...     n_redundant=0, n_clusters_per_class=1, shuffle=False, random_state=0)
        >>> forest = RandomForestClassifier(n_estimators=20, random_state=0)
        >>> table = feature_importance(forest, X, y, random_state=0)
        >>> table.features
        ('x0', 'x1', 'x2', 'x3', 'random_probe')
        >>> table.ranking()[0]  # the one informative column comes first
        'x0'
    """
    check_number("n_repeats", n_repeats, low=1, integer=True)
    check_number(
        "test_size", test_size, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
    )
    scorer = get_scorer(scoring)
    if feature_names is None:
        columns = getattr(X, "columns", None)
        feature_names = list(map(str, columns)) if columns is not None else None
    values = np.asarray(X, dtype=float)
    targets = np.asarray(y)
    if values.ndim != 2 or len(values) != len(targets) or targets.ndim != 1:
        raise ValueError(
            f"X must be (n_samples, n_features) and y (n_samples,); got {values.shape} and "
            f"{targets.shape}"
        )
    names = (
        list(feature_names)
        if feature_names is not None
        else [f"x{j}" for j in range(values.shape[1])]
    )
    if len(names) != values.shape[1] or PROBE in names:
        raise ValueError(
            f"feature_names must give {values.shape[1]} names other than {PROBE!r}; got {names}"
        )
    classes = np.unique(targets)
    if scoring in BINARY_SCORINGS and len(classes) != 2:
        raise ValueError(
            f"scoring={scoring!r} needs binary labels; y has {len(classes)} classes "
            f"{classes[:10].tolist()}; use scoring='accuracy' or 'f1_macro'"
        )
    rng = check_random_state(random_state)
    with_probe = np.column_stack([values, rng.standard_normal(len(values))])
    stratify = targets if is_classifier(estimator) else None
    X_fit, X_held, y_fit, y_held = train_test_split(
        with_probe, targets, test_size=test_size, stratify=stratify, random_state=rng
    )
    num = with_probe.shape[1]
    model = clone(estimator).fit(X_fit, y_fit)
    impurity, impurity_std = _impurity(model, num)
    permuted = permutation_importance(
        model, X_held, y_held, scoring=scoring, n_repeats=n_repeats, random_state=rng
    )
    single = np.array(
        [
            scorer(clone(estimator).fit(X_fit[:, [j]], y_fit), X_held[:, [j]], y_held)
            for j in range(num)
        ]
    )
    real = slice(0, num - 1)
    full = clone(estimator).fit(X_fit[:, real], y_fit)
    return FeatureImportance(
        features=(*names, PROBE),
        impurity=impurity,
        impurity_std=impurity_std,
        permutation=np.asarray(permuted.importances_mean, dtype=float),
        permutation_std=np.asarray(permuted.importances_std, dtype=float),
        single_feature_score=single,
        all_features_score=float(scorer(full, X_held[:, real], y_held)),
        scoring=scoring,
    )
