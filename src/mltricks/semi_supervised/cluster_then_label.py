"""Semi-supervised clustering: k-means whose clusters are pulled towards the class labels.

A few labeled and many unlabeled samples are clustered; labeled samples may leave their nearest
cluster when that makes the clusters purer in class, the centers follow, and each cluster
predicts the majority class of its labeled members ("cluster-then-label", see Basu, Banerjee and
Mooney, *Semi-supervised Clustering by Seeding*, ICML 2002,
https://www.cs.utexas.edu/~ml/papers/semi-icml-02.pdf, for the family of methods).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from mltricks._utils.checks import check_number
from mltricks.semi_supervised import _cluster_steps as steps
from mltricks.semi_supervised._labels import check_semi_supervised_target


class ClusterThenLabel(ClassifierMixin, BaseEstimator):
    """k-means with a class-impurity term, then the majority class of each cluster.

    The objective of an assignment ``a`` of the ``N`` samples to ``K`` centers ``c`` is

    ``J = (1 / N) sum_i |x_i - c_{a(i)}|^2 + alpha * G``,  with
    ``G = sum_k (n_k / n) * (1 - sum_y (n_ky / n_k)^2)``

    where ``n_ky`` counts the labeled samples of class ``y`` in cluster ``k``, ``n_k`` all
    labeled samples in cluster ``k`` and ``n`` all labeled samples: ``G`` is the Gini impurity
    of each cluster's labeled members, weighted by the cluster's share of the labeled samples
    (clusters without labeled members count 0). Distances are squared, so that the mean is the
    best center and ``alpha=0`` is exactly k-means; ``alpha`` is therefore in units of squared
    distance (scale the features, or sweep ``alpha`` on a log grid).

    Each iteration: (1) assign every sample to its nearest center; (2) supervised step: move
    labeled samples to another cluster while a move lowers ``J`` (centers fixed; the change of
    each possible move is computed from the class counts, for all moves at once), starting from
    the nearest-center assignment or, if that ends higher, from where the labeled samples were
    after the previous iteration, so that ``J`` never increases; (3) an empty cluster gets the
    sample farthest from its center; (4) centers = means of the clusters. The loop stops when
    ``J`` after the supervised step improves by at most ``tol`` times its value, when the
    assignment repeats, or after ``max_iter`` iterations. Initial centers come from k-means++.

    Args:
        n_clusters: number of clusters ``K`` (at most the number of samples).
        alpha: weight of the class impurity, ``>= 0``; 0 is k-means + majority vote.
        max_iter: most iterations, ``>= 1``.
        tol: relative improvement of ``J`` below which the loop stops, ``>= 0``.
        random_state: seed of the k-means++ initial centers.

    Attributes:
        classes_: ``(C,)`` class labels seen in ``y`` (``-1`` excluded).
        cluster_centers_: ``(K, D)`` centers, the means of the final clusters.
        labels_: ``(N,)`` cluster of each training sample after the last supervised step (a
            moved labeled sample sits in a cluster other than its nearest).
        cluster_classes_: ``(K,)`` class each cluster predicts: the majority class of its
            labeled members (the smallest label on ties); a cluster without labeled members
            takes the class of the nearest cluster that has some.
        cluster_class_proba_: ``(K, C)`` class shares of each cluster's labeled members (copied
            from the nearest labeled cluster for a cluster without any).
        objective_history_: ``(n_iter_, 2)`` ``J`` before and after the supervised step of each
            iteration (with that iteration's centers); the second column never increases.
        objective_: ``J`` of ``labels_`` with ``cluster_centers_``.
        n_iter_: iterations run.
        n_moves_: labeled samples placed away from their nearest center, summed over iterations.
        n_features_in_: number of features seen in ``fit``.

    Example:
        >>> from sklearn.datasets import make_blobs
        >>> X, y = make_blobs(300, centers=3, random_state=0)
        >>> y_semi = np.where(np.arange(300) % 10 == 0, y, -1)  # 10% labeled
        >>> model = ClusterThenLabel(3, alpha=1.0, random_state=0).fit(X, y_semi)
        >>> model.cluster_centers_.shape, float((model.predict(X) == y).mean()) > 0.9
        ((3, 2), True)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        alpha: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-6,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y) -> ClusterThenLabel:
        """Cluster ``X`` guided by the labels of ``y``.

        Args:
            X: ``(N, D)`` finite samples.
            y: ``(N,)`` integer class labels, ``-1`` for an unlabeled sample; at least one
                sample must be labeled.

        Returns:
            self
        """
        check_number("n_clusters", self.n_clusters, low=1, integer=True)
        check_number("alpha", self.alpha, low=0.0)
        check_number("max_iter", self.max_iter, low=1, integer=True)
        check_number("tol", self.tol, low=0.0)
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        num_samples, num_clusters = len(X), int(self.n_clusters)
        if num_clusters > num_samples:
            raise ValueError(
                f"n_clusters={num_clusters} must be <= n_samples={num_samples}, the number of "
                "samples in X"
            )
        target = check_semi_supervised_target(y)
        self.classes_ = target.classes
        labeled = np.flatnonzero(target.labeled_mask)
        labeled_classes = target.class_index[labeled]
        shape = (num_clusters, len(self.classes_))
        alpha = float(self.alpha)
        x_sq_norms = np.einsum("nd,nd->n", X, X)
        centers, _ = kmeans_plusplus(
            X,
            num_clusters,
            x_squared_norms=x_sq_norms,
            random_state=check_random_state(self.random_state),
        )

        history, total_moves = [], 0
        previous_assignment, previous_labeled = None, None
        nearest_pass = steps.NearestPass(X, x_sq_norms)
        rows = np.arange(len(labeled))
        for _ in range(int(self.max_iter)):
            assignment, sums, sizes, distance_total = nearest_pass(centers)
            labeled_distance = steps.squared_distances(X[labeled], centers, x_sq_norms[labeled])
            start = assignment[labeled]
            moved, before, after = steps.supervised_step(
                labeled_distance,
                distance_total - labeled_distance[rows, start].sum(),
                num_samples,
                start,
                previous_labeled,
                labeled_classes,
                shape,
                alpha,
            )
            history.append((before, after))
            total_moves += int((moved != start).sum())
            steps.move_samples(sums, X, labeled, start, moved)
            sizes += np.bincount(moved, minlength=num_clusters) - np.bincount(
                start, minlength=num_clusters
            )
            assignment[labeled] = moved

            if not sizes.all():  # rare: an empty cluster takes the farthest sample
                distance = steps.assigned_distances(X, centers, x_sq_norms, assignment)
                reseeded = steps.reseed_empty_clusters(
                    assignment, distance, ~target.labeled_mask, num_clusters
                )
                changed = np.flatnonzero(reseeded != assignment)
                steps.move_samples(sums, X, changed, assignment[changed], reseeded[changed])
                assignment = reseeded
                sizes = np.bincount(assignment, minlength=num_clusters).astype(X.dtype)
            centers = sums / sizes[:, None]
            repeated = previous_assignment is not None and np.array_equal(
                assignment, previous_assignment
            )
            stalled = len(history) > 1 and history[-2][1] - after <= self.tol * abs(history[-2][1])
            previous_assignment, previous_labeled = assignment, assignment[labeled]
            if repeated or stalled:
                break

        self.cluster_centers_ = centers
        self.labels_ = assignment.astype(np.int64, copy=False)
        self.objective_history_ = np.asarray(history, dtype=np.float64)
        self.n_iter_ = len(history)
        self.n_moves_ = total_moves
        counts = steps.class_counts(assignment[labeled], labeled_classes, shape)
        self.objective_ = float(
            steps.assigned_distances(X, centers, x_sq_norms, assignment).mean()
            + alpha * steps.weighted_gini(counts)
        )
        self.cluster_class_proba_ = _cluster_class_proba(counts, centers)
        self.cluster_classes_ = self.classes_[self.cluster_class_proba_.argmax(axis=1)]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``(N, C)`` class shares of the labeled members of each sample's nearest cluster."""
        nearest = self._nearest(X)
        return self.cluster_class_proba_[nearest]

    def predict(self, X) -> np.ndarray:
        """``(N,)`` class of each sample's nearest cluster (``cluster_classes_``)."""
        nearest = self._nearest(X)
        return self.cluster_classes_[nearest]

    def _nearest(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        return steps.nearest_centers(X, centers, np.einsum("nd,nd->n", X, X))[0]


def _cluster_class_proba(counts: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Class shares per cluster; a cluster without labeled members copies the nearest one."""
    sizes = counts.sum(axis=1)
    proba = counts / np.maximum(sizes, 1)[:, None]
    with_labels = np.flatnonzero(sizes > 0)
    without = np.flatnonzero(sizes == 0)
    if without.size:
        lonely = centers[without]
        gaps = steps.squared_distances(
            lonely, centers[with_labels], np.einsum("kd,kd->k", lonely, lonely)
        )
        proba[without] = proba[with_labels[gaps.argmin(axis=1)]]
    return proba
