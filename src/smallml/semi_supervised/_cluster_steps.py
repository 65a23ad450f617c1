"""The steps of ``ClusterThenLabel``: nearest centers, class impurity, supervised moves, means.

Everything is vectorised over samples. Distances are squared Euclidean, computed as
``|x|^2 - 2 x.c + |c|^2`` in row chunks, so memory stays linear in the number of samples.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

CHUNK_ROWS = 16384  # rows per distance block: (CHUNK_ROWS, K) floats stay in cache


def nearest_centers(
    X: np.ndarray, centers: np.ndarray, x_sq_norms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center of every sample and the squared distance to it.

    Args:
        X: ``(N, D)`` samples.
        centers: ``(K, D)`` cluster centers.
        x_sq_norms: ``(N,)`` squared norms of the samples.

    Returns:
        ``(N,)`` int64 index of the nearest center (the first one on ties) and ``(N,)`` float64
        squared distance to it.
    """
    num_samples = len(X)
    nearest = np.empty(num_samples, dtype=np.int64)
    distance = np.empty(num_samples, dtype=np.float64)
    center_sq_norms = np.einsum("kd,kd->k", centers, centers)
    for start in range(0, num_samples, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, num_samples)
        block = X[start:stop] @ centers.T  # (B, K); |x|^2 does not change the argmin
        block *= -2
        block += center_sq_norms
        index = block.argmin(axis=1)
        nearest[start:stop] = index
        distance[start:stop] = block[np.arange(stop - start), index] + x_sq_norms[start:stop]
    np.maximum(distance, 0.0, out=distance)  # rounding can make a tiny distance negative
    return nearest, distance


def squared_distances(X: np.ndarray, centers: np.ndarray, x_sq_norms: np.ndarray) -> np.ndarray:
    """``(N, K)`` float64 squared distances of a (small) set of samples to every center."""
    center_sq_norms = np.einsum("kd,kd->k", centers, centers)
    distance = (X @ centers.T).astype(np.float64)
    distance *= -2
    distance += x_sq_norms[:, None]
    distance += center_sq_norms
    return np.maximum(distance, 0.0, out=distance)


def assigned_distances(
    X: np.ndarray, centers: np.ndarray, x_sq_norms: np.ndarray, assignment: np.ndarray
) -> np.ndarray:
    """``(N,)`` squared distance of each sample to the center it is assigned to."""
    distance = np.empty(len(X), dtype=np.float64)
    center_sq_norms = np.einsum("kd,kd->k", centers, centers)
    for start in range(0, len(X), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(X))
        own = assignment[start:stop]
        dot = np.einsum("nd,nd->n", X[start:stop], centers[own])
        distance[start:stop] = x_sq_norms[start:stop] - 2 * dot + center_sq_norms[own]
    return np.maximum(distance, 0.0, out=distance)


def class_counts(assignment: np.ndarray, class_index: np.ndarray, shape: tuple[int, int]):
    """``(K, C)`` number of labeled samples of each class in each cluster."""
    num_clusters, num_classes = shape
    flat = np.bincount(assignment * num_classes + class_index, minlength=num_clusters * num_classes)
    return flat.reshape(num_clusters, num_classes).astype(np.float64)


def _purity_terms(sum_sq: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``sum_c n_kc^2 / n_k`` per cluster, 0 for a cluster without labeled samples."""
    return np.divide(sum_sq, sizes, out=np.zeros_like(sum_sq), where=sizes > 0)


def weighted_gini(counts: np.ndarray) -> float:
    """Gini impurity of each cluster's labeled samples, weighted by the cluster's labeled share.

    ``sum_k (n_k / n) (1 - sum_c (n_kc / n_k)^2) = 1 - (1 / n) sum_k sum_c n_kc^2 / n_k``
    """
    sizes = counts.sum(axis=1)
    return 1.0 - float(_purity_terms((counts**2).sum(axis=1), sizes).sum()) / float(sizes.sum())


def supervised_step(
    distances: np.ndarray,
    unlabeled_sum: float,
    num_samples: int,
    start: np.ndarray,
    previous: np.ndarray | None,
    class_index: np.ndarray,
    shape: tuple[int, int],
    alpha: float,
) -> tuple[np.ndarray, float, float]:
    """The supervised step of one iteration: the moves, and the objective before and after.

    The moves start from the nearest-center assignment ``start``. When the clusters the labeled
    samples had after the previous iteration (``previous``) score better than where those moves
    end, the moves start from there instead: that keeps the objective from rising between
    iterations.

    Args:
        distances: ``(L, K)`` squared distances of the labeled samples to the centers.
        unlabeled_sum: summed squared distance of the unlabeled samples to their nearest center.
        num_samples: ``N``, all samples.
        start: ``(L,)`` nearest center of each labeled sample.
        previous: ``(L,)`` clusters of the labeled samples after the previous iteration, or None.
        class_index: ``(L,)`` class of each labeled sample in ``0..C-1``.
        shape: ``(K, C)``.
        alpha: weight of the class impurity.

    Returns:
        ``(L,)`` clusters of the labeled samples after the step, the objective before the step
        and after it.
    """
    rows = np.arange(len(start))

    def objective(assignment: np.ndarray) -> float:
        mean_distance = (unlabeled_sum + distances[rows, assignment].sum()) / num_samples
        return mean_distance + alpha * weighted_gini(class_counts(assignment, class_index, shape))

    before = objective(start)
    if alpha == 0:  # no move can lower the distance term
        return start, before, before
    moved = supervised_moves(distances, start, class_index, shape[1], alpha, num_samples)
    after = objective(moved)
    if previous is not None and objective(previous) < after:
        moved = supervised_moves(distances, previous, class_index, shape[1], alpha, num_samples)
        after = objective(moved)
    return moved, before, after


def supervised_moves(
    distances: np.ndarray,
    start: np.ndarray,
    class_index: np.ndarray,
    num_classes: int,
    alpha: float,
    num_samples: int,
) -> np.ndarray:
    """Move labeled samples between clusters (centers fixed) while a move lowers the objective.

    The change of the objective when labeled sample ``i`` (class ``c``) leaves cluster ``k``
    for ``k'`` needs the class counts of the two clusters only:
    ``(d[i, k'] - d[i, k]) / N - alpha / L * (removal gain[k, c] + addition gain[k', c])``,
    where a gain is the change of ``sum_c n_kc^2 / n_k`` (see ``weighted_gini``). Each pass
    computes it for all ``(i, k')`` at once and proposes every sample's best move; the
    proposals are then applied most improving first, each one re-checked against the counts
    as they stand (a few scalar operations), so every applied move lowers the objective and the
    search ends.

    Args:
        distances: ``(L, K)`` squared distances of the labeled samples to the centers.
        start: ``(L,)`` cluster of each labeled sample before the moves.
        class_index: ``(L,)`` class of each labeled sample in ``0..C-1``.
        num_classes: ``C``.
        alpha: weight of the class impurity.
        num_samples: ``N``, all samples (the distance term is a mean over them).

    Returns:
        ``(L,)`` cluster of each labeled sample after the moves.
    """
    num_labeled, num_clusters = distances.shape
    assignment = start.copy()
    counts = class_counts(assignment, class_index, (num_clusters, num_classes))
    rows = np.arange(num_labeled)
    weight = alpha / num_labeled
    # changes below this are rounding noise, not an improvement
    threshold = 1e-12 * (distances.max(initial=0.0) / num_samples + weight)
    while True:
        sizes = counts.sum(axis=1, keepdims=True)  # (K, 1)
        sum_sq = (counts**2).sum(axis=1, keepdims=True)
        purity = _purity_terms(sum_sq, sizes)
        removal = _purity_terms(sum_sq - 2 * counts + 1, sizes - 1) - purity  # (K, C)
        addition = _purity_terms(sum_sq + 2 * counts + 1, sizes + 1) - purity  # (K, C)
        distance_change = (distances - distances[rows, assignment][:, None]) / num_samples
        delta = distance_change - weight * (
            removal[assignment, class_index][:, None] + addition[:, class_index].T
        )  # (L, K)
        delta[rows, assignment] = np.inf
        target = delta.argmin(axis=1)
        change = delta[rows, target]
        proposals = np.flatnonzero(change < -threshold)
        if proposals.size == 0:
            return assignment
        proposals = proposals[np.argsort(change[proposals], kind="stable")]
        applied = _apply_moves(
            proposals.tolist(),
            target[proposals].tolist(),
            distance_change[proposals, target[proposals]].tolist(),
            assignment,
            class_index,
            counts,
            weight,
            threshold,
        )
        if not applied:  # cannot happen: the first proposal always still improves
            return assignment


def _apply_moves(samples, targets, distance_changes, assignment, class_index, counts, weight, eps):
    """Apply proposed moves in order, each re-checked on the current counts (plain Python
    numbers: a few hundred nanoseconds per proposal). Updates ``assignment`` and ``counts``."""
    table = counts.tolist()
    sizes = [sum(row) for row in table]
    sum_sq = [sum(v * v for v in row) for row in table]
    classes = class_index.tolist()
    clusters = assignment.tolist()

    def purity(square: float, size: float) -> float:
        return square / size if size > 0 else 0.0

    applied = 0
    for i, goal, distance_change in zip(samples, targets, distance_changes):
        source, cls = clusters[i], classes[i]
        here, there = table[source][cls], table[goal][cls]
        gain = (
            purity(sum_sq[source] - 2 * here + 1, sizes[source] - 1)
            - purity(sum_sq[source], sizes[source])
            + purity(sum_sq[goal] + 2 * there + 1, sizes[goal] + 1)
            - purity(sum_sq[goal], sizes[goal])
        )
        if distance_change - weight * gain >= -eps:
            continue
        table[source][cls] -= 1
        table[goal][cls] += 1
        sizes[source] -= 1
        sizes[goal] += 1
        sum_sq[source] += 1 - 2 * here
        sum_sq[goal] += 1 + 2 * there
        clusters[i] = goal
        applied += 1
    assignment[:] = clusters
    counts[:] = table
    return applied


def reseed_empty_clusters(
    assignment: np.ndarray, distance: np.ndarray, unlabeled_mask: np.ndarray, num_clusters: int
) -> np.ndarray:
    """Give each empty cluster the sample farthest from its center (as scikit-learn's k-means).

    Unlabeled samples are preferred: moving one to a cluster of its own only lowers the
    distance term and leaves the class impurity as it is. Returns a new assignment where every
    cluster has a member (given at least ``num_clusters`` samples).
    """
    sizes = np.bincount(assignment, minlength=num_clusters)
    empty = np.flatnonzero(sizes == 0)
    if empty.size == 0:
        return assignment
    assignment = assignment.copy()
    distance = distance.copy()
    for cluster in empty:
        donor_ok = sizes[assignment] > 1
        pool = donor_ok & unlabeled_mask if (donor_ok & unlabeled_mask).any() else donor_ok
        sample = int(np.argmax(np.where(pool, distance, -np.inf)))
        sizes[assignment[sample]] -= 1
        sizes[cluster] += 1
        assignment[sample] = cluster
        distance[sample] = 0.0
    return assignment


def cluster_means(X: np.ndarray, assignment: np.ndarray, num_clusters: int) -> np.ndarray:
    """``(K, D)`` mean of each cluster's samples (every cluster must have one)."""
    num_samples = len(X)
    one_hot = sp.csr_matrix(
        (np.ones(num_samples, dtype=X.dtype), assignment, np.arange(num_samples + 1)),
        shape=(num_samples, num_clusters),
    )
    sums = np.asarray(one_hot.T @ X)
    sizes = np.bincount(assignment, minlength=num_clusters).astype(X.dtype)
    return sums / sizes[:, None]
