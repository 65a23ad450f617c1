"""ClusterThenLabel against scikit-learn's KMeans and LabelSpreading on make_blobs.

10 clusters in 16 dimensions (``cluster_std=3``), 1% of the samples labeled, 10k, 100k and 1M
samples. Time per iteration = (median fit time - median k-means++ seeding time) / iterations,
the seeding being the same scikit-learn routine in both; medians over interleaved repeats in one
process. Times are the process's CPU time, both single-threaded (``threadpool_limits(1)``):
on a shared machine CPU time is far less disturbed by other work than wall time, and the one
thread keeps KMeans' OpenMP loop and ours on equal terms. Peak memory = the largest amount allocated during ``fit`` on top of the input
(``tracemalloc``, which sees NumPy's allocations), measured in a separate untimed fit.
LabelSpreading's knn graph is computed by brute force, O(n^2) in time: it runs up to
``SPREADING_MAX`` samples (set ``MLTRICKS_BENCH_SPREADING_MAX`` to change it); larger sizes show
an estimate from the quadratic scaling, marked as such.
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.datasets import make_blobs
from sklearn.semi_supervised import LabelSpreading
from threadpoolctl import threadpool_limits

from mltricks.semi_supervised import ClusterThenLabel

SIZES = (10_000, 100_000, 1_000_000)
REPEATS = {10_000: 15, 100_000: 5, 1_000_000: 3}
NUM_CLUSTERS, NUM_FEATURES, LABELED_SHARE = 10, 16, 0.01
SPREADING_MAX = int(os.environ.get("MLTRICKS_BENCH_SPREADING_MAX", "10000"))


def _data(num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_blobs(
        num_samples,
        n_features=NUM_FEATURES,
        centers=NUM_CLUSTERS,
        cluster_std=3.0,
        random_state=0,
    )
    labeled = np.random.default_rng(0).random(num_samples) < LABELED_SHARE
    return X, y, np.where(labeled, y, -1)


def _ours(alpha: float = 1.0) -> ClusterThenLabel:
    return ClusterThenLabel(NUM_CLUSTERS, alpha=alpha, random_state=0)


def _kmeans() -> KMeans:
    return KMeans(NUM_CLUSTERS, n_init=1, algorithm="lloyd", random_state=0)


def _timed(fit) -> tuple[float, object]:
    start = time.process_time()
    with threadpool_limits(limits=1):
        model = fit()
    return time.process_time() - start, model


def _peak_mb(fit) -> float:
    tracemalloc.start()
    try:
        fit()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _vote_accuracy(kmeans: KMeans, y: np.ndarray, y_semi: np.ndarray) -> float:
    """k-means + majority vote of the labeled members (nearest labeled cluster otherwise)."""
    votes = np.full(NUM_CLUSTERS, -1)
    for cluster in range(NUM_CLUSTERS):
        members = y_semi[(kmeans.labels_ == cluster) & (y_semi != -1)]
        if members.size:
            votes[cluster] = np.bincount(members).argmax()
    labeled = np.flatnonzero(votes >= 0)
    centers = kmeans.cluster_centers_
    for cluster in np.flatnonzero(votes < 0):
        votes[cluster] = votes[
            labeled[((centers[labeled] - centers[cluster]) ** 2).sum(1).argmin()]
        ]
    unlabeled = y_semi == -1
    return float(np.mean(votes[kmeans.labels_[unlabeled]] == y[unlabeled]))


def _measure(num_samples: int) -> dict[str, object]:
    X, y, y_semi = _data(num_samples)
    unlabeled = y_semi == -1
    seeding, ours_times, kmeans_times = [], [], []
    for _ in range(REPEATS[num_samples]):  # interleaved, so load on the machine hits both
        seeding.append(_timed(lambda: kmeans_plusplus(X, NUM_CLUSTERS, random_state=0))[0])
        seconds, ours = _timed(lambda: _ours().fit(X, y_semi))
        ours_times.append(seconds)
        seconds, kmeans = _timed(lambda: _kmeans().fit(X))
        kmeans_times.append(seconds)
    seed_time = statistics.median(seeding)
    ours_iter = (statistics.median(ours_times) - seed_time) / ours.n_iter_
    kmeans_iter = (statistics.median(kmeans_times) - seed_time) / kmeans.n_iter_
    row: dict[str, object] = {
        "n": num_samples,
        "ours_iters": ours.n_iter_,
        "kmeans_iters": kmeans.n_iter_,
        "ours_ms_per_iter": 1e3 * ours_iter,
        "kmeans_ms_per_iter": 1e3 * kmeans_iter,
        "ratio": ours_iter / kmeans_iter,
        "ours_fit_s": statistics.median(ours_times),
        "ours_moves": ours.n_moves_,
        "ours_peak_mb": _peak_mb(lambda: _ours().fit(X, y_semi)),
        "kmeans_peak_mb": _peak_mb(lambda: _kmeans().fit(X)),
        "input_mb": X.nbytes / 2**20,
        "acc_ours": float(np.mean(ours.predict(X[unlabeled]) == y[unlabeled])),
        "acc_vote": _vote_accuracy(kmeans, y, y_semi),
    }
    if num_samples <= SPREADING_MAX:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the spreading iterations
            seconds, spreading = _timed(
                lambda: LabelSpreading(kernel="knn", n_neighbors=7).fit(X, y_semi)
            )
        row["spreading_s"] = seconds
        row["acc_spreading"] = float(np.mean(spreading.transduction_[unlabeled] == y[unlabeled]))
    return row


def main() -> str:
    rows = [_measure(n) for n in SIZES]
    measured = [r for r in rows if "spreading_s" in r]
    lines = [
        "#### ClusterThenLabel (alpha=1) vs scikit-learn KMeans(n_init=1), lloyd",
        "",
        "| n | iterations (ours / KMeans) | ms per iteration, ours | ms per iteration, KMeans "
        "| time ratio | peak extra memory, ours | peak extra memory, KMeans | input X |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['ours_iters']} / {r['kmeans_iters']} "
            f"| {r['ours_ms_per_iter']:.1f} | {r['kmeans_ms_per_iter']:.1f} | {r['ratio']:.2f}x "
            f"| {r['ours_peak_mb']:.1f} MB ({r['ours_peak_mb'] * 2**20 / r['n']:.0f} B/sample) "
            f"| {r['kmeans_peak_mb']:.1f} MB ({r['kmeans_peak_mb'] * 2**20 / r['n']:.0f} "
            f"B/sample) | {r['input_mb']:.0f} MB |"
        )
    lines += [
        "",
        "#### Accuracy on the unlabeled samples (1% labeled) and fit time vs LabelSpreading (knn, "
        "7 neighbours)",
        "",
        "| n | ClusterThenLabel alpha=1 | KMeans + majority vote | LabelSpreading "
        "| fit s, ClusterThenLabel | fit s, LabelSpreading | moves |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "spreading_s" in r:
            spreading = f"{r['acc_spreading']:.3f}"
            spreading_time = f"{r['spreading_s']:.1f}"
        else:
            reference = measured[-1] if measured else None
            estimate = (
                f"~{reference['spreading_s'] * (r['n'] / reference['n']) ** 2:,.0f} (estimate)"
                if reference
                else "?"
            )
            spreading = "not run: O(n^2) knn graph"
            spreading_time = estimate
        lines.append(
            f"| {r['n']:,} | {r['acc_ours']:.3f} | {r['acc_vote']:.3f} "
            f"| {spreading} | {r['ours_fit_s']:.2f} | {spreading_time} | {r['ours_moves']} |"
        )
    lines += [
        "",
        "Medians of CPU time over interleaved repeats "
        f"({', '.join(f'{n:,}: {k}' for n, k in REPEATS.items())}), one thread each; a shared "
        "machine, so read the ratios. Fit times in the second table are CPU seconds too. "
        "Memory: tracemalloc peak during fit on top of the input X.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
