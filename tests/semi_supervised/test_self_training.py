import warnings
from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits, make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import SelfTrainingClassifier as SklearnSelfTraining
from sklearn.svm import SVC, LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from mltricks.semi_supervised import SelfTrainingClassifier
from mltricks.semi_supervised._labels import stratified_validation_split


def _digits(labeled_every=20):
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    return X, y, np.where(np.arange(len(y)) % labeled_every == 0, y, -1)


def _logistic():
    return LogisticRegression(C=1.0, max_iter=500)


def test_max_iter_zero_is_the_base_estimator_on_the_labeled_samples():
    X, y, y_semi = _digits()
    model = SelfTrainingClassifier(_logistic(), max_iter=0, random_state=0).fit(X, y_semi)
    labeled = y_semi != -1
    base = _logistic().fit(X[labeled], y[labeled])
    np.testing.assert_allclose(model.predict_proba(X), base.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(model.transduction_, y_semi)
    assert model.n_iter_ == 0 and model.termination_condition_ == "max_iter"
    assert model.best_iter_ == 0 and len(model.history_) == 1


class _Scored(ClassifierMixin, BaseEstimator):
    """Class 1 probability is a logistic of the first feature; the decision function is not."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-4 * X[:, 0]))
        return np.stack([1 - p, p], axis=1)

    def decision_function(self, X):
        return X[:, 1]  # a raw score that ranks samples differently

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_the_k_best_most_probable_samples_are_added_with_their_predicted_class():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = np.full(60, -1)
    y[:6] = [0, 1, 0, 1, 0, 1]
    model = SelfTrainingClassifier(_Scored(), k_best=5, max_iter=1, validation_fraction=0.0)
    model.fit(X, y)
    confidence = _Scored().fit(X, y[:6]).predict_proba(X).max(axis=1)
    unlabeled = np.arange(6, 60)
    expected = unlabeled[np.argsort(-confidence[unlabeled], kind="stable")[:5]]
    added = np.flatnonzero(model.labeled_iter_ == 1)
    np.testing.assert_array_equal(np.sort(added), np.sort(expected))
    np.testing.assert_array_equal(model.transduction_[added], (X[added, 0] > 0).astype(int))
    assert set(model.transduction_[model.labeled_iter_ == -1]) == {-1}


def test_y_true_is_deprecated_changes_nothing_and_its_columns_match_the_first_pass():
    X, y, y_semi = _digits(labeled_every=10)
    params = {"k_best": 20, "max_iter": 4, "random_state": 3}
    with pytest.warns(DeprecationWarning, match="y_true is deprecated"):
        seen = SelfTrainingClassifier(_logistic(), **params).fit(X, y_semi, y_true=y)
    blind = SelfTrainingClassifier(_logistic(), **params).fit(X, y_semi)
    np.testing.assert_array_equal(seen.transduction_, blind.transduction_)
    assert [r["val_accuracy"] for r in seen.history_] == [r["val_accuracy"] for r in blind.history_]
    assert "pseudo_label_accuracy" not in blind.history_[0]
    for row in seen.history_[1:]:
        added = blind.first_pass_labeled_iter_ == row["round"]
        expected = np.mean(blind.first_pass_transduction_[added] == y[added])
        assert row["pseudo_label_accuracy"] == pytest.approx(expected)
    assert np.isnan(seen.history_[0]["pseudo_label_accuracy"])


def test_the_first_pass_is_kept_with_its_validation_samples_marked():
    X, _, y_semi = _digits(labeled_every=10)
    model = SelfTrainingClassifier(_logistic(), k_best=20, max_iter=3, random_state=0)
    model.fit(X, y_semi)
    held_out = model.first_pass_labeled_iter_ == -2
    labeled = y_semi != -1
    assert held_out.sum() == round(0.2 * labeled.sum()) and not (held_out & ~labeled).any()
    # held-out samples keep their label; the others started labeled (0) or unlabeled (-1)
    np.testing.assert_array_equal(model.first_pass_transduction_[labeled], y_semi[labeled])
    assert set(model.first_pass_labeled_iter_[labeled & ~held_out]) == {0}
    for row in model.history_[1:]:
        added = model.first_pass_labeled_iter_ == row["round"]
        assert row["num_added"] == added.sum() == 20
        assert (y_semi[added] == -1).all()
    # the final pass ran again on every labeled sample
    assert (model.labeled_iter_ >= -1).all() and (model.labeled_iter_[labeled] == 0).all()


class _Recorder(ClassifierMixin, BaseEstimator):
    """Logistic regression on columns 1.. that records the sample ids (column 0) of each fit."""

    fits: ClassVar[list[set[int]]] = []

    def fit(self, X, y):
        type(self).fits.append(set(X[:, 0].astype(int)))
        self.model_ = _logistic().fit(X[:, 1:], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X[:, 1:])

    def predict(self, X):
        return self.model_.predict(X[:, 1:])


def test_validation_samples_are_never_trained_on_or_pseudo_labeled_while_choosing():
    X, _, y_semi = _digits(labeled_every=10)
    X = np.column_stack([np.arange(len(X)), X])
    _Recorder.fits = []
    model = SelfTrainingClassifier(_Recorder(), k_best=30, max_iter=3, random_state=0)
    model.fit(X, y_semi)
    labeled = set(np.flatnonzero(y_semi != -1))
    first_pass = _Recorder.fits[: model.n_iter_ + 1]
    validation = labeled - first_pass[0]
    assert len(validation) == round(0.2 * len(labeled))
    assert all(not (ids & validation) for ids in first_pass)
    assert labeled <= _Recorder.fits[-1]  # the final model learns from every labeled sample
    assert len(_Recorder.fits) == model.n_iter_ + 1 + model.best_iter_ + 1


def test_without_validation_the_first_pass_is_the_final_one():
    X, _, y_semi = _digits(labeled_every=10)
    model = SelfTrainingClassifier(_logistic(), k_best=25, max_iter=4, validation_fraction=0.0)
    model.fit(X, y_semi)
    assert len(model.history_) == 5 and np.isnan(model.history_[0]["val_accuracy"])
    np.testing.assert_array_equal(model.first_pass_transduction_, model.transduction_)
    np.testing.assert_array_equal(model.first_pass_labeled_iter_, model.labeled_iter_)
    for row in model.history_[1:]:
        assert row["num_added"] == (model.labeled_iter_ == row["round"]).sum() == 25
        assert row["num_pseudo_labeled"] == 25 * row["round"]


def test_stopping_rule_and_the_kept_round_follow_validation_accuracy():
    X, _, y_semi = _digits(labeled_every=10)
    model = SelfTrainingClassifier(_logistic(), k_best=10, patience=2, random_state=1)
    model.fit(X, y_semi)
    accuracy = np.array([r["val_accuracy"] for r in model.history_])
    assert np.isfinite(accuracy).all() and len(accuracy) == model.n_iter_ + 1
    assert model.best_iter_ == np.flatnonzero(accuracy == accuracy.max())[-1]  # latest best
    # the rule, replayed: stop once `patience` rounds in a row fall below the best so far
    best_so_far = np.maximum.accumulate(accuracy)
    below = accuracy[1:] < best_so_far[:-1]
    stop = next((r + 1 for r in range(1, len(below)) if below[r - 1] and below[r]), None)
    assert model.termination_condition_ == "patience"
    assert stop == model.n_iter_
    # pseudo-labels after the kept round are dropped; the final fit uses every labeled sample
    assert model.labeled_iter_.max() == model.best_iter_
    final = model.labeled_iter_ >= 0
    refit = _logistic().fit(X[final], model.transduction_[final])
    np.testing.assert_allclose(model.predict_proba(X), refit.predict_proba(X), atol=1e-10)
    assert (model.transduction_[y_semi != -1] == y_semi[y_semi != -1]).all()


@pytest.mark.parametrize("validation_fraction", [0.2, 0.0])
def test_the_final_pass_is_scikit_learn_self_training_for_the_kept_rounds(validation_fraction):
    X, _, y_semi = _digits(labeled_every=10)
    X, y_semi = X[:300], y_semi[:300]
    model = SelfTrainingClassifier(
        _logistic(), k_best=45, patience=1, validation_fraction=validation_fraction, random_state=1
    )
    model.fit(X, y_semi)
    reference = SklearnSelfTraining(
        _logistic(), criterion="k_best", k_best=45, max_iter=model.best_iter_
    ).fit(X, y_semi)
    np.testing.assert_array_equal(model.transduction_, reference.transduction_)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-10)
    if validation_fraction == 0.0:  # nothing to stop it: every sample gets a label
        assert model.termination_condition_ == "all_labeled"
        assert model.best_iter_ == model.n_iter_ == reference.n_iter_ == 6


def test_termination_conditions():
    X, y = make_blobs(80, centers=[[-5, 0], [5, 0]], random_state=0)
    y_semi = np.where(np.arange(80) < 10, y, -1)
    every = SelfTrainingClassifier(_logistic(), k_best=100, validation_fraction=0.0).fit(X, y_semi)
    assert every.termination_condition_ == "all_labeled" and every.n_iter_ == 1
    assert (every.transduction_ != -1).all() and (every.transduction_ == y).all()
    capped = SelfTrainingClassifier(_logistic(), k_best=5, max_iter=3, validation_fraction=0.0)
    capped.fit(X, y_semi)
    assert capped.termination_condition_ == "max_iter" and (capped.labeled_iter_ > 0).sum() == 15
    # separable blobs: validation accuracy is 1 in every round, a tie is no reason to stop
    patient = SelfTrainingClassifier(_logistic(), k_best=5, patience=1, random_state=0)
    patient.fit(X, y_semi)
    assert patient.termination_condition_ == "all_labeled" and patient.n_iter_ == 14
    assert patient.best_iter_ == 14 and (patient.labeled_iter_ >= 0).all()


def test_validation_split_is_stratified_and_leaves_every_class_a_training_sample():
    rng = np.random.RandomState(0)
    classes = np.repeat(np.arange(4), [10, 5, 2, 1])
    mask = stratified_validation_split(classes, 0.2, rng)
    assert mask.sum() == round(0.2 * 18)
    for cls in range(4):
        assert (~mask & (classes == cls)).any()
    assert not stratified_validation_split(np.arange(5), 0.5, rng).any()  # singletons only
    assert stratified_validation_split(np.array([0, 0, 1]), 0.01, rng).sum() == 1


@pytest.mark.parametrize(
    ("estimator", "kwargs", "y", "error", "match"),
    [
        (SVC(), {}, None, TypeError, "estimator must be.*predict_proba.*SVC"),
        (LinearSVC(), {}, None, TypeError, "no predict_proba"),
        (_logistic(), {"k_best": 0}, None, ValueError, "k_best must be an integer >= 1; got 0"),
        (_logistic(), {"max_iter": -1}, None, ValueError, "max_iter.*>= 0"),
        (_logistic(), {"validation_fraction": 1.0}, None, ValueError, "validation_fraction"),
        (_logistic(), {"patience": 0}, None, ValueError, "patience"),
        (_logistic(), {}, np.full(40, -1), ValueError, "no labeled sample"),
        (_logistic(), {}, np.linspace(0, 1, 40), ValueError, "integer class labels"),
        (_logistic(), {}, np.repeat([0, 1, -1, -2], 10), ValueError, r"labels >= 0.*got \[-2\]"),
    ],
)
def test_bad_input_names_the_argument_and_value(estimator, kwargs, y, error, match):
    X, y_blobs = make_blobs(40, centers=2, random_state=0)
    y = np.where(np.arange(40) < 10, y_blobs, -1) if y is None else y
    with pytest.raises(error, match=match):
        SelfTrainingClassifier(estimator, **kwargs).fit(X, y)


@pytest.mark.parametrize("dtype", [bool, np.int32, np.float32])
def test_the_labels_keep_their_dtype(dtype):
    X, y = make_blobs(60, centers=[[-3, 0], [3, 0]], random_state=0)
    y = y.astype(dtype)
    if dtype is not bool:  # bool labels cannot mark an unlabeled sample
        y = np.where(np.arange(60) < 20, y, -1).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bool: no unlabeled sample
        model = SelfTrainingClassifier(_logistic(), k_best=10, random_state=0).fit(X, y)
    assert model.classes_.dtype == dtype and model.predict(X).dtype == dtype
    assert model.transduction_.dtype == dtype
    labeled = y != -1
    assert (model.predict(X)[labeled] == y[labeled]).mean() == 1.0


def test_nan_in_X_is_refused_by_the_base_estimator():
    X, y = make_blobs(40, centers=2, random_state=0)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SelfTrainingClassifier(_logistic()).fit(X, np.where(np.arange(40) < 10, y, -1))


def _expected_failures(estimator):
    # as for scikit-learn's own SelfTrainingClassifier: a fully labeled y gives 0 rounds
    return {"check_non_transformer_estimators_n_iter": "n_iter_ is 0 when every sample is labeled"}


@parametrize_with_checks(
    [SelfTrainingClassifier(LogisticRegression(), max_iter=3, random_state=0)],
    expected_failed_checks=_expected_failures,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
