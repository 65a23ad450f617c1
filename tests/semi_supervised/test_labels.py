"""The label contract shared by the semi-supervised estimators (``_labels``): class labels >= 0,
-1 for an unlabeled sample, dtype kept."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from mltricks.semi_supervised import ClusterThenLabel, SelfTrainingClassifier
from mltricks.semi_supervised._labels import check_semi_supervised_target

ESTIMATORS = {
    "self_training": lambda: SelfTrainingClassifier(
        LogisticRegression(max_iter=500), k_best=10, random_state=0
    ),
    "cluster_then_label": lambda: ClusterThenLabel(4, random_state=0),
}


def _blobs():
    X, y = make_blobs(80, centers=[[-4, 0], [4, 0]], cluster_std=0.5, random_state=0)
    return X, y


def test_the_check_keeps_the_dtype_and_indexes_the_classes():
    y = np.array([3, -1, 5, 3, -1], dtype=np.int16)
    target = check_semi_supervised_target(y)
    assert target.classes.tolist() == [3, 5] and target.classes.dtype == np.int16
    assert target.class_index.tolist() == [0, -1, 1, 0, -1]
    assert target.labeled_mask.tolist() == [True, False, True, True, False]
    assert target.y is not None and target.y.dtype == np.int16
    flags = check_semi_supervised_target(np.array([True, False, True]))
    assert flags.classes.tolist() == [False, True] and flags.classes.dtype == bool
    floats = check_semi_supervised_target(np.array([1.0, -1.0, 0.0]))
    assert floats.classes.dtype == np.float64 and floats.labeled_mask.tolist() == [1, 0, 1]


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("bad", [-2, -7])
def test_negative_labels_other_than_minus_one_are_refused(name, bad):
    X, y = _blobs()
    y = np.where(np.arange(80) % 4 == 0, y, -1)
    y[5] = bad
    with pytest.raises(
        ValueError, match=rf"labels >= 0.*got \[{bad}\] at 1 sample\(s\), first at index 5"
    ):
        ESTIMATORS[name]().fit(X, y)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_bool_labels_come_back_as_bool(name):
    X, y = _blobs()
    flags = y.astype(bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bool labels cannot mark unlabeled samples
        model = ESTIMATORS[name]().fit(X, flags)
    predicted = model.predict(X)
    assert model.classes_.dtype == bool and predicted.dtype == bool
    assert (predicted == flags).all()  # separable blobs


@pytest.mark.parametrize("name", ESTIMATORS)
def test_int32_labels_with_unlabeled_samples_keep_their_dtype(name):
    X, y = _blobs()
    y = np.where(np.arange(80) % 4 == 0, y + 10, -1).astype(np.int32)
    model = ESTIMATORS[name]().fit(X, y)
    assert model.classes_.tolist() == [10, 11] and model.predict(X).dtype == np.int32
