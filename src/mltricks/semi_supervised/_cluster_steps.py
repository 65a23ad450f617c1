"""The steps of ``ClusterThenLabel``: nearest centers, class impurity, supervised moves, means.

Everything is vectorised over samples. Distances are squared Euclidean, computed as
``|x|^2 - 2 x.c + |c|^2`` in row chunks, so memory stays linear in the number of samples.
"""

from __future__ import annotations

import numpy as np

try:  # private, but the very pass KMeans runs; NearestPass falls back to NumPy without it
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense as _lloyd_iter
except ImportError:  # pragma: no cover - another scikit-learn layout
    _lloyd_iter = None

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
    nearest, distance, _ = _assign(X, centers, x_sq_norms, sums=False)
    return nearest, distance


class NearestPass:
    """The assignment pass of every iteration: each sample's nearest center, the per-cluster
    sums and counts of that assignment, and the summed squared distance to the nearest centers.

    scikit-learn's Lloyd iteration (Cython, the pass ``KMeans`` itself runs) does the work when
    it is available: the objective's distance term then comes from the sums, as
    ``sum_i |x_i|^2 - 2 sum_k c_k.S_k + sum_k n_k |c_k|^2``, with no second pass over ``X``.
    Otherwise, or when the nearest assignment leaves a cluster empty (scikit-learn would then
    move points into it on its own), a NumPy pass computes the same quantities.
    """

    def __init__(self, X: np.ndarray, x_sq_norms: np.ndarray) -> None:
        self.X = X
        self.x_sq_norms = x_sq_norms
        self.x_sq_total = float(x_sq_norms.sum())
        self.fast = _lloyd_iter is not None and X.flags.c_contiguous
        if self.fast:
            self.weights = np.ones(len(X), dtype=X.dtype)
            self.labels = np.empty(len(X), dtype=np.int32)

    def __call__(self, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``(N,)`` nearest center, ``(K, D)`` sums, ``(K,)`` counts and the distance total."""
        if self.fast:
            num_clusters = len(centers)
            means = np.empty_like(centers)
            weights = np.zeros(num_clusters, dtype=centers.dtype)
            shift = np.zeros(num_clusters, dtype=centers.dtype)
            _lloyd_iter(self.X, self.weights, centers, means, weights, self.labels, shift, 1, True)
            # counted from the labels: scikit-learn moves a far point's weight (not its label)
            # into a cluster the labels leave empty, and the NumPy pass handles that case
            counts = np.bincount(self.labels, minlength=num_clusters).astype(centers.dtype)
            if counts.all():
                sums = means * counts[:, None]
                total = (
                    self.x_sq_total
                    - 2 * float(np.einsum("kd,kd->", centers, sums))
                    + float(counts @ np.einsum("kd,kd->k", centers, centers))
                )
                return self.labels.copy(), sums, counts, max(total, 0.0)
        nearest, distance, totals = _assign(self.X, centers, self.x_sq_norms, sums=True)
        assert totals is not None
        counts = np.bincount(nearest, minlength=len(centers)).astype(centers.dtype)
        return nearest, totals, counts, float(distance.sum())


def _assign(
    X: np.ndarray, centers: np.ndarray, x_sq_norms: np.ndarray, *, sums: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    # Blocks are laid out (K, rows): the minimum over K then runs across rows in contiguous
    # vectors, and the nearest index comes from K comparisons with it, several times faster
    # than NumPy's argmin over short rows of K values.
    num_samples, num_clusters = len(X), len(centers)
    nearest = np.empty(num_samples, dtype=np.int64)
    distance = np.empty(num_samples, dtype=np.float64)
    scaled = (-2 * centers).astype(X.dtype, copy=False)  # (K, D)
    center_sq_norms = np.einsum("kd,kd->k", centers, centers).astype(X.dtype)[:, None]
    totals = np.zeros((num_clusters, X.shape[1]), dtype=X.dtype) if sums else None
    rows = min(CHUNK_ROWS, num_samples)
    buffer = np.empty((num_clusters, rows), dtype=X.dtype)
    smallest = np.empty(rows, dtype=X.dtype)
    is_min = np.empty(rows, dtype=bool)
    clusters = np.arange(num_clusters)[:, None]
    for start in range(0, num_samples, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, num_samples)
        size = stop - start
        chunk, block, low = X[start:stop], buffer[:, :size], smallest[:size]
        np.matmul(scaled, chunk.T, out=block)  # -2 c.x; |x|^2 does not change the nearest
        block += center_sq_norms
        np.min(block, axis=0, out=low)
        index = nearest[start:stop]
        for k in range(num_clusters - 1, -1, -1):  # downwards: the first index wins ties
            np.equal(block[k], low, out=is_min[:size])
            np.copyto(index, k, where=is_min[:size])
        np.add(low, x_sq_norms[start:stop], out=distance[start:stop])
        if totals is not None:  # the block becomes the chunk's one-hot assignment, (K, rows)
            np.equal(index, clusters, out=block, casting="unsafe")
            totals += block @ chunk
    np.maximum(distance, 0.0, out=distance)  # rounding can make a tiny distance negative
    return nearest, distance, totals


def move_samples(
    sums: np.ndarray, X: np.ndarray, samples: np.ndarray, source: np.ndarray, target: np.ndarray
) -> None:
    """Update per-cluster ``sums`` in place for ``samples`` leaving ``source`` for ``target``."""
    changed = source != target
    if changed.any():
        rows = X[samples[changed]]
        np.subtract.at(sums, source[changed], rows)
        np.add.at(sums, target[changed], rows)


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
    """``sum_c n_kc^2 / n_k`` per cluster, 0 for a cluster without labeled samples.

    An empty cluster has ``sum_sq`` 0 too, so dividing by ``max(n_k, 1)`` gives its 0 without a
    masked division (this runs several times per move pass). The hypothetical counts of
    ``supervised_moves`` read only entries where this also holds: a removal from a cluster
    of one sample of class c has ``sum_sq - 2 n_kc + 1 = 0``.
    """
    return sum_sq / np.maximum(sizes, 1)


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
    if previous is not None and not np.array_equal(previous, moved) and objective(previous) < after:
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
    scaled = distances / num_samples
    # changes below this are rounding noise, not an improvement
    threshold = 1e-12 * (distances.max(initial=0.0) / num_samples + weight)
    while True:
        sizes = counts.sum(axis=1, keepdims=True)  # (K, 1)
        sum_sq = np.einsum("kc,kc->k", counts, counts)[:, None]
        purity = _purity_terms(sum_sq, sizes)
        twice = 2 * counts
        removal = _purity_terms(sum_sq + 1 - twice, sizes - 1) - purity  # (K, C)
        addition = _purity_terms(sum_sq + 1 + twice, sizes + 1) - purity  # (K, C)
        distance_change = scaled - scaled[rows, assignment][:, None]  # (L, K)
        gain = addition[:, class_index].T  # (L, K)
        gain += removal[assignment, class_index][:, None]
        gain *= weight
        delta = distance_change - gain  # (L, K)
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
