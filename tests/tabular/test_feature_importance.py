import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mltricks.tabular import PROBE, feature_importance


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    decisive = rng.standard_normal(n)
    y = (decisive > 0).astype(int)
    # weaker, noisy copies of the label: informative alone, useless next to the decisive one
    weak = y + rng.normal(0, 0.5, n)
    weaker = y + rng.normal(0, 1.0, n)
    return np.column_stack([weak, decisive, weaker]), y


def _forest():
    return RandomForestClassifier(n_estimators=30, min_samples_leaf=10, random_state=0)


def test_the_deciding_feature_ranks_first_and_the_probe_last():
    X, y = _data()
    table = feature_importance(
        _forest(), X, y, n_repeats=5, random_state=0, feature_names=["weak", "decisive", "weaker"]
    )
    assert table.features == ("weak", "decisive", "weaker", PROBE)
    for by in ("permutation", "impurity", "single_feature_score"):
        assert table.ranking(by)[0] == "decisive", by
    assert table.ranking("single_feature_score")[-1] == PROBE
    assert table.single_feature_score[1] > 0.95 and table.all_features_score > 0.95
    # the single-feature score of the probe is chance level
    assert abs(table.single_feature_score[3] - 0.5) < 0.15
    assert table.impurity.sum() == pytest.approx(1.0)
    assert (table.impurity_std > 0).all() and (table.permutation_std >= 0).all()
    rows = table.rows()
    assert rows[0]["feature"] == "decisive" and len(rows) == 4
    assert "decisive" in str(table)


def test_permutation_importance_is_the_held_out_score_drop():
    from sklearn.base import clone
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    X, y = _data(1)
    table = feature_importance(_forest(), X, y, n_repeats=3, random_state=7)
    # rebuild the split the function makes: same generator, same order of draws
    rng = np.random.RandomState(7)
    with_probe = np.column_stack([X, rng.standard_normal(len(X))])
    X_fit, X_held, y_fit, y_held = train_test_split(
        with_probe, y, test_size=0.25, stratify=y, random_state=rng
    )
    model = clone(_forest()).fit(X_fit, y_fit)
    base = f1_score(y_held, model.predict(X_held))
    assert table.all_features_score == pytest.approx(
        f1_score(y_held, clone(_forest()).fit(X_fit[:, :3], y_fit).predict(X_held[:, :3]))
    )
    drops = []
    for _ in range(3):
        shuffled = X_held.copy()
        shuffled[:, 1] = shuffled[rng.permutation(len(shuffled)), 1]
        drops.append(base - f1_score(y_held, model.predict(shuffled)))
    assert table.permutation[1] == pytest.approx(np.mean(drops), abs=0.05)
    assert table.permutation[1] > 0.3


def test_estimator_left_unfitted_results_reproducible_and_no_impurity_without_trees():
    X, y = _data(2, n=200)
    estimator = _forest()
    first = feature_importance(estimator, X, y, n_repeats=2, random_state=3)
    second = feature_importance(estimator, X, y, n_repeats=2, random_state=3)
    assert not hasattr(estimator, "estimators_")
    assert np.array_equal(first.permutation, second.permutation)
    linear = feature_importance(LogisticRegression(), X, y, n_repeats=2, random_state=0)
    assert np.isnan(linear.impurity).all() and linear.ranking()[0] == "x1"


def test_bad_input_is_refused():
    X, y = _data(n=90)
    three = np.arange(90) % 3
    with pytest.raises(ValueError, match="needs binary labels; y has 3 classes"):
        feature_importance(_forest(), X, three)
    table = feature_importance(_forest(), X, three, scoring="accuracy", n_repeats=1)
    assert len(table.features) == 4
    with pytest.raises(ValueError, match="feature_names"):
        feature_importance(_forest(), X, y, feature_names=["a", "b"])
    with pytest.raises(ValueError, match="n_samples"):
        feature_importance(_forest(), X, y[:-1])
    with pytest.raises(ValueError, match="n_repeats"):
        feature_importance(_forest(), X, y, n_repeats=0)
    with pytest.raises(ValueError, match="by must be one of"):
        table.ranking("gain")
