import itertools
import time

import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import parametrize_with_checks

from mltricks.semi_supervised import ClusterThenLabel
from mltricks.semi_supervised import _cluster_steps as steps


def _semi(y, every, offset=0):
    """Keep every ``every``-th label, -1 elsewhere."""
    return np.where(np.arange(len(y)) % every == offset, y, -1)


def _brute_objective(X, y, assignment, centers, alpha):
    """J written out with loops: mean squared distance + alpha * weighted Gini impurity."""
    mean_distance = np.mean([np.sum((x - centers[a]) ** 2) for x, a in zip(X, assignment)])
    labeled = [(a, label) for a, label in zip(assignment, y) if label != -1]
    impurity = 0.0
    for cluster in set(a for a, _ in labeled):
        members = [label for a, label in labeled if a == cluster]
        shares = [members.count(c) / len(members) for c in set(members)]
        impurity += len(members) / len(labeled) * (1 - sum(s * s for s in shares))
    return mean_distance + alpha * impurity


def _majority_vote(assignment, y, centers):
    """k-means + majority vote, the slow way (a cluster without labels: nearest labeled one)."""
    votes = {}
    for cluster in range(len(centers)):
        members = y[(assignment == cluster) & (y != -1)]
        if members.size:
            values, counts = np.unique(members, return_counts=True)
            votes[cluster] = values[np.argmax(counts)]
    for cluster in range(len(centers)):
        if cluster not in votes:
            labeled = sorted(votes)
            gaps = [np.sum((centers[cluster] - centers[k]) ** 2) for k in labeled]
            votes[cluster] = votes[labeled[int(np.argmin(gaps))]]
    return np.array([votes[k] for k in range(len(centers))])


def test_alpha_zero_is_kmeans_plus_majority_vote_from_the_same_initial_centers():
    X, y = make_blobs(400, centers=5, cluster_std=2.5, random_state=3)
    y_semi = _semi(y, 15)
    model = ClusterThenLabel(7, alpha=0.0, tol=0.0, random_state=11).fit(X, y_semi)
    init, _ = kmeans_plusplus(X, 7, random_state=11)
    kmeans = KMeans(7, init=init, n_init=1, tol=0.0, max_iter=300, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(model.cluster_centers_, kmeans.cluster_centers_, atol=1e-10)
    np.testing.assert_array_equal(model.labels_, kmeans.labels_)
    assert model.n_moves_ == 0
    assert model.objective_ == pytest.approx(kmeans.inertia_ / len(X), rel=1e-10)
    votes = _majority_vote(kmeans.labels_, y_semi, kmeans.cluster_centers_)
    np.testing.assert_array_equal(model.cluster_classes_, votes)
    X_new = np.random.default_rng(0).normal(0, 8, (100, 2))
    np.testing.assert_array_equal(model.predict(X_new), votes[kmeans.predict(X_new)])


def _contradicting_labels():
    """Two tight blobs; two labeled samples of blob A carry blob B's class."""
    rng = np.random.default_rng(0)
    blob_b = rng.normal(0, 0.5, (30, 2)) + np.array([6.0, 0.0])
    X = np.concatenate([rng.normal(0, 0.5, (30, 2)), blob_b])
    y = np.full(60, -1)
    y[[0, 1, 2]] = 0  # blob A, class 0
    y[[3, 4]] = 1  # blob A, but class 1: they contradict the geometry
    y[[30, 31, 32]] = 1  # blob B, class 1
    return X, y


def test_labels_that_contradict_the_geometry_are_moved_and_the_centers_follow():
    X, y = _contradicting_labels()
    plain = ClusterThenLabel(2, alpha=0.0, random_state=0).fit(X, y)
    guided = ClusterThenLabel(2, alpha=5.0, random_state=0).fit(X, y)
    cluster_a, cluster_b = guided.labels_[0], guided.labels_[30]
    assert plain.labels_[3] == plain.labels_[0]  # k-means keeps them with their blob
    assert guided.labels_[3] == guided.labels_[4] == cluster_b  # the supervised step moved them
    assert guided.n_moves_ >= 2
    # the trap of the earlier implementation: moves must reach the centers
    np.testing.assert_allclose(
        guided.cluster_centers_[cluster_b], X[guided.labels_ == cluster_b].mean(axis=0)
    )
    np.testing.assert_allclose(
        guided.cluster_centers_[cluster_b], X[[*range(30, 60), 3, 4]].mean(axis=0)
    )
    assert not np.allclose(np.sort(guided.cluster_centers_, 0), np.sort(plain.cluster_centers_, 0))
    assert guided.cluster_classes_[cluster_a] == 0 and guided.cluster_classes_[cluster_b] == 1
    # before/after the supervised step: the impurity term drops by the moves
    assert (guided.objective_history_[:, 1] < guided.objective_history_[:, 0]).any()


@pytest.mark.parametrize("alpha", [0.0, 0.3, 3.0, 100.0])
def test_objective_never_increases_and_matches_the_formula(alpha):
    rng = np.random.default_rng(1)
    X, _ = make_blobs(300, centers=4, cluster_std=3.0, random_state=1)
    y_semi = np.where(rng.random(300) < 0.3, rng.integers(0, 4, 300), -1)  # noisy labels
    model = ClusterThenLabel(6, alpha=alpha, tol=0.0, max_iter=50, random_state=2).fit(X, y_semi)
    after = model.objective_history_[:, 1]
    assert np.all(np.diff(after) <= 1e-12 * after[0])
    assert np.all(model.objective_history_[:, 1] <= model.objective_history_[:, 0] + 1e-12)
    assert model.objective_ <= after[-1] + 1e-12
    brute = _brute_objective(X, y_semi, model.labels_, model.cluster_centers_, alpha)
    assert model.objective_ == pytest.approx(brute, rel=1e-9)
    assert model.n_iter_ == len(model.objective_history_) <= 50


def test_weighted_gini_equals_the_loop_definition():
    counts = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 2], [0, 5, 0]], dtype=float)
    total = counts.sum()
    expected = sum(
        row.sum() / total * (1 - sum((c / row.sum()) ** 2 for c in row))
        for row in counts
        if row.sum()
    )
    assert steps.weighted_gini(counts) == pytest.approx(expected)


def test_supervised_moves_end_in_a_state_no_single_move_improves():
    rng = np.random.default_rng(4)
    num_samples, alpha = 40, 0.8
    distances = rng.random((12, 4)) * 3
    classes = rng.integers(0, 3, 12)
    start = distances.argmin(axis=1)

    def objective(assignment):  # the labeled part of J, written out
        counts = steps.class_counts(assignment, classes, (4, 3))
        impurity = sum(
            row.sum() / 12 * (1 - np.sum((row / row.sum()) ** 2)) for row in counts if row.sum()
        )
        return distances[np.arange(12), assignment].sum() / num_samples + alpha * impurity

    moved = steps.supervised_moves(distances, start, classes, 3, alpha, num_samples)
    assert objective(moved) < objective(start)
    for i, cluster in itertools.product(range(12), range(4)):
        trial = moved.copy()
        trial[i] = cluster
        assert objective(trial) >= objective(moved) - 1e-12


def test_the_move_step_stays_fast_for_thousands_of_labeled_samples():
    rng = np.random.default_rng(0)
    distances = rng.random((5000, 10))
    classes = rng.integers(0, 10, 5000)  # labels at random: thousands of moves to make
    start = distances.argmin(axis=1)
    began = time.perf_counter()
    moved = steps.supervised_moves(distances, start, classes, 10, 1.0, 50_000)
    assert time.perf_counter() - began < 5.0  # ~0.1 s; one move per pass took ~15 s
    assert (moved != start).sum() > 3000
    before = steps.weighted_gini(steps.class_counts(start, classes, (10, 10)))
    assert steps.weighted_gini(steps.class_counts(moved, classes, (10, 10))) < 0.2 * before


def test_empty_clusters_are_reseeded():
    assignment = np.array([0, 0, 0, 2, 2])
    distance = np.array([0.1, 5.0, 0.2, 0.3, 0.4])
    unlabeled = np.array([True, False, True, True, True])  # sample 1 is farthest but labeled
    reseeded = steps.reseed_empty_clusters(assignment, distance, unlabeled, 4)
    assert set(np.bincount(reseeded, minlength=4)) >= {1} and np.bincount(reseeded).min() >= 1
    assert reseeded[1] == 0  # the labeled sample stays; unlabeled samples are taken first
    # duplicated points: k-means++ must repeat centers, so clusters empty out on every pass
    X = np.repeat(np.arange(6.0)[:, None], 2, axis=0)
    y = np.where(np.arange(12) % 4 == 0, np.arange(12) % 3, -1)
    model = ClusterThenLabel(10, alpha=1.0, random_state=0).fit(X, y)
    assert np.bincount(model.labels_, minlength=10).min() >= 1
    assert np.isfinite(model.cluster_centers_).all()


def test_predictions_probabilities_and_clusters_without_labels():
    X, y = make_blobs(200, centers=3, cluster_std=0.6, random_state=0)
    y_semi = _semi(y, 25)  # 8 labels, 12 clusters: some clusters have none
    model = ClusterThenLabel(12, alpha=1.0, random_state=0).fit(X, y_semi)
    proba = model.predict_proba(X)
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(X), model.classes_[proba.argmax(axis=1)])
    labeled_clusters = set(model.labels_[y_semi != -1])
    expected = _majority_vote(model.labels_, y_semi, model.cluster_centers_)
    np.testing.assert_array_equal(model.cluster_classes_, expected)
    assert len(labeled_clusters) < 12
    assert model.score(X, y) > 0.95


def test_float32_input_and_integral_float_labels():
    X, y = make_blobs(120, centers=3, random_state=0)
    y_semi = _semi(y, 6)
    model = ClusterThenLabel(3, random_state=0).fit(X.astype(np.float32), y_semi.astype(float))
    reference = ClusterThenLabel(3, random_state=0).fit(X, y_semi)
    assert model.cluster_centers_.dtype == np.float32
    assert model.classes_.dtype == np.float64  # the labels' dtype is kept, as scikit-learn
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-4)
    np.testing.assert_array_equal(model.predict(X.astype(np.float32)), reference.predict(X))


@pytest.mark.parametrize(
    ("kwargs", "X", "y", "error", "match"),
    [
        ({}, np.zeros((10, 2)), np.full(10, -1), ValueError, "no labeled sample"),
        ({}, np.zeros((4, 2)), np.array([0.5, 1, -1, -1]), ValueError, "integer class labels"),
        ({}, np.zeros((4, 2)), np.array(["a", "b", "a", "b"]), ValueError, "'a'"),
        ({}, np.array([[0.0, np.nan], [1.0, 1.0]]), np.array([0, 1]), ValueError, "NaN"),
        ({}, np.array([[0.0, np.inf], [1.0, 1.0]]), np.array([0, 1]), ValueError, "infinity"),
        (
            {"n_clusters": 8},
            np.zeros((5, 2)),
            np.arange(5),
            ValueError,
            "n_clusters=8.*n_samples=5",
        ),
        ({"alpha": -1.0}, np.zeros((5, 2)), np.arange(5), ValueError, "alpha must be.*>= 0.*-1.0"),
        ({"n_clusters": 2.5}, np.zeros((5, 2)), np.arange(5), TypeError, "n_clusters.*integer"),
        ({"max_iter": 0}, np.zeros((5, 2)), np.arange(5), ValueError, "max_iter.*>= 1"),
    ],
)
def test_bad_input_names_the_argument_and_value(kwargs, X, y, error, match):
    params = {"n_clusters": 2, **kwargs}
    with pytest.raises(error, match=match):
        ClusterThenLabel(**params).fit(X, y)


def _expected_failures(estimator):
    return {
        # scikit-learn's check fits string labels; here -1 marks an unlabeled sample, so labels
        # must be integers (the bad-input rule)
        "check_classifiers_classes": "labels must be integers; -1 marks unlabeled samples",
    }


@parametrize_with_checks(
    [ClusterThenLabel(3, random_state=0)], expected_failed_checks=_expected_failures
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("fast", [True, False])
def test_the_nearest_pass_equals_a_brute_force_assignment(fast):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5)) + 10.0  # away from the origin
    centers = X[rng.choice(3000, 6, replace=False)].copy()
    centers[5] = 1e3  # far from every sample: a cluster the nearest assignment leaves empty
    x_sq = np.einsum("nd,nd->n", X, X)
    nearest_pass = steps.NearestPass(X, x_sq)
    nearest_pass.fast = fast and nearest_pass.fast  # False: the NumPy pass
    squared = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    expected = squared.argmin(1)
    for used in (centers[:5], centers):  # no empty cluster, then one (NumPy pass either way)
        nearest, sums, counts, total = nearest_pass(used)
        expected = squared[:, : len(used)].argmin(1)
        np.testing.assert_array_equal(nearest, expected)
        for k in range(len(used)):
            np.testing.assert_allclose(sums[k], X[expected == k].sum(0), rtol=1e-10, atol=1e-9)
        np.testing.assert_array_equal(counts, np.bincount(expected, minlength=len(used)))
        assert total == pytest.approx(squared[np.arange(3000), expected].sum(), rel=1e-9)
