"""Self-training: a classifier labels its most confident unlabeled samples and learns from them.

Each round fits the base classifier on the labeled and the pseudo-labeled samples, then adds the
``k_best`` unlabeled samples with the highest predicted class probability, with that class
(Yarowsky, *Unsupervised Word Sense Disambiguation Rivaling Supervised Methods*, ACL 1995,
https://aclanthology.org/P95-1026/). Unlike a fixed number of rounds, a validation split of the
labeled samples decides when to stop and which round to keep.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import check_random_state, get_tags, safe_mask
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from mltricks._utils.checks import check_number
from mltricks._utils.deprecation import deprecation_warning
from mltricks.semi_supervised._labels import (
    UNLABELED,
    check_semi_supervised_target,
    stratified_validation_split,
)


def _estimator_has(method: str):
    def check(self: SelfTrainingClassifier) -> bool:
        fitted = getattr(self, "estimator_", None)
        return hasattr(fitted if fitted is not None else self.estimator, method)

    return check


class SelfTrainingClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Self-training around any classifier with ``predict_proba``, stopped on validation.

    A round fits a clone of ``estimator`` on the labeled and pseudo-labeled samples, then adds
    the ``k_best`` unlabeled samples whose largest predicted probability (``predict_proba``,
    never a raw score) is highest, labeled with their predicted class. ``fit`` works in two
    passes, as early stopping does when data are scarce:

    1. choose the number of rounds: hold out ``validation_fraction`` of the labeled samples
       (stratified; every class keeps a training sample) and self-train on the rest, measuring
       validation accuracy after every round (round 0 = labeled samples only). A round whose
       accuracy is at least the best so far counts as progress (with a handful of validation
       samples accuracy ties most rounds, and a tie is no evidence against the pseudo-labels);
       the loop stops after ``patience`` rounds in a row below the best, when no unlabeled
       sample is left, or after ``max_iter`` rounds. The kept round is the latest best one.
    2. self-train again on all labeled samples, validation included, for the kept number of
       rounds; the last fit is the final model.

    ``max_iter=0`` is therefore the base estimator fitted on the labeled samples only, and when
    validation never stops the loop the result equals self-training without validation for the
    same ``k_best`` and ``max_iter`` (as scikit-learn's ``SelfTrainingClassifier`` with
    ``criterion="k_best"``). Without a validation split (``validation_fraction=0``, or a single
    labeled sample per class) one pass runs and every round is kept.

    Args:
        estimator: a scikit-learn classifier with ``fit`` and ``predict_proba``; it is cloned.
        k_best: unlabeled samples added per round, ``>= 1``.
        max_iter: most rounds, ``>= 0``, or None for no limit.
        validation_fraction: share of the labeled samples held out to choose the number of
            rounds, in ``[0, 1)``.
        patience: rounds in a row below the best validation accuracy before stopping, ``>= 1``.
        random_state: seed of the validation split.

    Attributes:
        estimator_: the final fitted classifier.
        classes_: ``(C,)`` class labels seen in ``y``.
        transduction_: ``(N,)`` labels of the final fit: ``y`` where labeled, the pseudo-label
            where one was added, ``-1`` elsewhere.
        labeled_iter_: ``(N,)`` round in which each sample got its label in the final pass: 0
            for labeled samples, ``r`` for a pseudo-label of round ``r``, ``-1`` if none.
        history_: one dict per round of the first pass (of the only pass without validation),
            round 0 first: ``round``, ``val_accuracy`` (NaN without validation), ``num_added``
            and ``num_pseudo_labeled`` (so far).
        first_pass_transduction_: ``(N,)`` labels at the end of the first pass (the pass that
            chooses the number of rounds; the only one without validation): ``y`` where labeled,
            the pseudo-label where one was added, ``-1`` elsewhere.
        first_pass_labeled_iter_: ``(N,)`` round in which each sample got its label in the
            first pass (0 labeled, ``r`` pseudo-labeled in round ``r``, ``-1`` none, ``-2``
            held out for validation). With hidden true labels the accuracy of round ``r``'s
            pseudo-labels is ``mean(first_pass_transduction_[added] == y_true[added])`` with
            ``added = first_pass_labeled_iter_ == r``.
        best_iter_: the number of rounds kept (rounds of the final pass).
        n_iter_: rounds run in the first pass.
        termination_condition_: why the first pass ended: ``"patience"``, ``"all_labeled"``
            or ``"max_iter"``.
        n_features_in_: number of features seen in ``fit``.

    Example:
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = load_digits(return_X_y=True)
        >>> y_semi = np.where(np.arange(len(y)) % 20 == 0, y, -1)  # 5% labeled
        >>> base = LogisticRegression(C=10, class_weight="balanced", max_iter=1000)
        >>> model = SelfTrainingClassifier(base, k_best=50, random_state=0)
        >>> model = model.fit(X / 16, y_semi)
        >>> model.history_[0]["round"], len(model.history_) == model.n_iter_ + 1
        (0, True)
    """

    def __init__(
        self,
        estimator: Any,
        *,
        k_best: int = 10,
        max_iter: int | None = None,
        validation_fraction: float = 0.2,
        patience: int = 3,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.estimator = estimator
        self.k_best = k_best
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = get_tags(self.estimator).input_tags.sparse
        return tags

    def _check_params(self) -> None:
        for method in ("fit", "predict_proba"):
            if not callable(getattr(self.estimator, method, None)):
                raise TypeError(
                    f"estimator must be a classifier with fit and predict_proba; got "
                    f"{self.estimator!r}, which has no {method}"
                )
        check_number("k_best", self.k_best, low=1, integer=True)
        if self.max_iter is not None:
            check_number("max_iter", self.max_iter, low=0, integer=True)
        check_number(
            "validation_fraction", self.validation_fraction, low=0.0, high=1.0, high_inclusive=False
        )
        check_number("patience", self.patience, low=1, integer=True)

    def fit(self, X, y, *, y_true=None) -> SelfTrainingClassifier:
        """Self-train on ``X`` with ``y`` (``-1`` marks unlabeled samples).

        Args:
            X: ``(N, D)`` samples (anything ``estimator`` accepts, sparse included).
            y: ``(N,)`` class labels ``>= 0`` (integers, bools or integral floats; their dtype
                is kept), ``-1`` for an unlabeled sample.
            y_true: deprecated in 0.2.0, removed in 0.3.0: hidden true labels that added
                ``pseudo_label_accuracy`` and ``cumulative_pseudo_label_accuracy`` to
                ``history_``. Score the pseudo-labels from ``first_pass_transduction_`` and
                ``first_pass_labeled_iter_`` instead.

        Returns:
            self
        """
        self._check_params()
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], ensure_all_finite=False)
        target = check_semi_supervised_target(y)
        y = target.y
        self.classes_ = target.classes
        if y_true is not None:
            deprecation_warning(
                "SelfTrainingClassifier.fit(): y_true is deprecated; score the pseudo-labels "
                "from first_pass_transduction_ and first_pass_labeled_iter_ instead.",
            )
            y_true = np.asarray(y_true)
            if y_true.shape != y.shape:
                raise ValueError(f"y_true must have the shape of y, {y.shape}; got {y_true.shape}")
        if target.labeled_mask.all():
            warnings.warn("y contains no unlabeled samples", UserWarning, stacklevel=2)
        labeled = np.flatnonzero(target.labeled_mask)
        validation = np.zeros(len(y), dtype=bool)
        validation[labeled] = stratified_validation_split(
            target.class_index[labeled],
            float(self.validation_fraction),
            check_random_state(self.random_state),
        )
        # first pass: the number of rounds, chosen on validation (or every round without one)
        run = _Run(self, X, y, target.labeled_mask, exclude=validation)
        best_round, best_accuracy, rounds_below = 0, -math.inf, 0
        termination = "max_iter"
        while True:
            accuracy = math.nan
            if validation.any():
                predicted = run.estimator.predict(X[safe_mask(X, validation)])
                accuracy = float(np.mean(predicted == y[validation]))
                rounds_below = 0 if accuracy >= best_accuracy else rounds_below + 1
                if accuracy >= best_accuracy:
                    best_round, best_accuracy = run.round, accuracy
            else:
                best_round = run.round
            run.record(val_accuracy=accuracy)
            if rounds_below >= self.patience:
                termination = "patience"
                break
            if self.max_iter is not None and run.round >= self.max_iter:
                break
            if not run.step():
                termination = "all_labeled"
                break
        self.history_ = run.history
        self.first_pass_transduction_ = run.transduction
        self.first_pass_labeled_iter_ = run.labeled_iter
        if y_true is not None:
            _add_pseudo_label_accuracy(self.history_, run.labeled_iter, run.transduction, y_true)
        self.n_iter_ = run.round
        self.termination_condition_ = termination
        self.best_iter_ = best_round
        if validation.any():
            # second pass: every labeled sample, for the kept number of rounds
            run = _Run(self, X, y, target.labeled_mask)
            while run.round < best_round and run.step():
                pass
        self.estimator_ = run.estimator
        self.transduction_ = run.transduction
        self.labeled_iter_ = run.labeled_iter
        return self

    def predict(self, X) -> np.ndarray:
        """``(N,)`` classes predicted by the final model."""
        check_is_fitted(self)
        return self.estimator_.predict(self._validate(X))

    def predict_proba(self, X) -> np.ndarray:
        """``(N, C)`` class probabilities of the final model."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._validate(X))

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X) -> np.ndarray:
        """Decision function of the final model."""
        check_is_fitted(self)
        return self.estimator_.decision_function(self._validate(X))

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities of the final model."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(self._validate(X))

    def _validate(self, X):
        return validate_data(
            self, X, accept_sparse=["csr", "csc"], ensure_all_finite=False, reset=False
        )


class _Run:
    """One self-training pass: the current model, the labels so far and the per-round history."""

    def __init__(
        self,
        owner: SelfTrainingClassifier,
        X,
        y: np.ndarray,
        labeled_mask: np.ndarray,
        exclude: np.ndarray | None = None,
    ) -> None:
        self.owner, self.X = owner, X
        self.transduction = y.copy()  # the labels' dtype, so pseudo-labels come back in it
        self.labeled_iter = np.where(labeled_mask, 0, UNLABELED)
        if exclude is not None:
            self.labeled_iter[exclude] = -2  # held out: neither trained on nor pseudo-labeled
        self.round = 0
        self.history: list[dict[str, float]] = []
        self._fit()

    def _fit(self) -> None:
        has_label = self.labeled_iter >= 0
        self.estimator = clone(self.owner.estimator)
        self.estimator.fit(self.X[safe_mask(self.X, has_label)], self.transduction[has_label])

    def step(self) -> bool:
        """Add the ``k_best`` most probable unlabeled samples and refit; False if none is left."""
        pool = np.flatnonzero(self.labeled_iter == -1)
        if pool.size == 0:
            return False
        self.round += 1
        proba = self.estimator.predict_proba(self.X[safe_mask(self.X, pool)])
        chosen = np.argsort(-proba.max(axis=1), kind="stable")[: int(self.owner.k_best)]
        added = pool[chosen]
        self.transduction[added] = self.estimator.classes_[proba[chosen].argmax(axis=1)]
        self.labeled_iter[added] = self.round
        self._fit()
        return True

    def record(self, **values: float) -> None:
        added = self.labeled_iter == self.round if self.round else np.zeros(0, bool)
        self.history.append(
            {
                "round": self.round,
                **values,
                "num_added": int(added.sum()),
                "num_pseudo_labeled": int((self.labeled_iter > 0).sum()),
            }
        )


def _add_pseudo_label_accuracy(
    history: list[dict[str, float]],
    labeled_iter: np.ndarray,
    transduction: np.ndarray,
    y_true: np.ndarray,
) -> None:
    """The deprecated ``y_true`` columns of ``history_``: accuracy of the pseudo-labels added in
    each round and of all added so far (NaN where none)."""
    correct = transduction == y_true
    for row in history:
        for key, mask in (
            ("pseudo_label_accuracy", labeled_iter == row["round"]),
            (
                "cumulative_pseudo_label_accuracy",
                (labeled_iter > 0) & (labeled_iter <= row["round"]),
            ),
        ):
            row[key] = float(correct[mask].mean()) if row["round"] and mask.any() else math.nan
