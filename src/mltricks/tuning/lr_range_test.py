"""Learning-rate range test by slope: pick the candidate whose loss falls fastest.

Comparing the first and the last batch loss (the naive rule) is fragile because single batch
losses are noisy. Here every candidate learning rate trains from the same checkpoint, with a
fresh optimizer and the same random state, on the same batches; a least-squares line is fitted
through its batch losses, and the candidate with the steepest negative slope wins. Resampling the
batches (a pairs bootstrap of the line fit) gives an interval on each slope and tells whether the
pick is stable.

A candidate whose loss explodes and then partly recovers can have the steepest slope of all, so
the slope alone would pick a rate that diverges. As in fastai's and torch-lr-finder's range tests,
a candidate counts as diverged once a batch loss exceeds a multiple of its starting loss
(``divergence_threshold``) or stops being finite; it is never picked, and a pick next to a
diverged candidate is not called stable.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mltricks._utils.checks import check_number
from mltricks._utils.randomness import NumpyRandomState, numpy_generator
from mltricks._utils.state import (
    get_rng_state,
    model_device,
    preserved,
    restore_model,
    set_rng_state,
)

OptimizerFactory = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr),
}


def default_lrs() -> np.ndarray:
    """Thirteen candidates, half a decade apart, from 1e-6 to 1."""
    return 10.0 ** np.arange(-6.0, 0.25, 0.5)


@dataclass
class LRRangeTestResult:
    """What ``lr_range_test`` measured.

    Attributes:
        lrs: ``(n_lrs,)`` candidate learning rates, in the order given.
        losses: ``(n_lrs, num_batches)`` training loss of each batch before its update; NaN
            after a candidate diverged (the loss that crossed ``divergence_threshold`` is kept,
            a non-finite one is NaN).
        slopes: ``(n_lrs,)`` least-squares slope of loss against batch index (NaN if diverged).
        slope_intervals: ``(n_lrs, 2)`` bootstrap percentile interval of each slope.
        diverged: ``(n_lrs,)`` True where a loss became NaN or infinite or exceeded
            ``divergence_threshold`` times the starting loss.
        best_lr: the candidate with the steepest negative slope among those that did not
            diverge, or None when no such slope is negative.
        naive_best_lr: the largest drop from the first to the last batch loss (the naive rule),
            or None when no loss dropped.
        pick_frequency: ``(n_lrs,)`` share of bootstrap resamples in which each candidate wins.
        stable: True when ``best_lr`` wins in at least ``stability`` of the resamples and
            neither of its neighbours in the sorted grid diverged.
        message: a sentence on the outcome (why ``best_lr`` is None, or how stable it is).
    """

    lrs: np.ndarray
    losses: np.ndarray
    slopes: np.ndarray
    slope_intervals: np.ndarray
    diverged: np.ndarray
    best_lr: float | None
    naive_best_lr: float | None
    pick_frequency: np.ndarray
    stable: bool
    message: str

    @property
    def best_index(self) -> int | None:
        """Index of ``best_lr`` in ``lrs`` (None when there is no pick)."""
        return None if self.best_lr is None else int(np.flatnonzero(self.lrs == self.best_lr)[0])

    @property
    def naive_index(self) -> int | None:
        """Index of ``naive_best_lr`` in ``lrs`` (None when there is no pick)."""
        if self.naive_best_lr is None:
            return None
        return int(np.flatnonzero(self.lrs == self.naive_best_lr)[0])

    def plot(self, ax: Any = None) -> Any:
        """Batch losses of every candidate with its fitted line; the pick drawn thick."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        steps = np.arange(self.losses.shape[1])
        colors = plt.get_cmap("viridis")(np.linspace(0, 1, len(self.lrs)))
        for i, (lr, color) in enumerate(zip(self.lrs, colors)):
            best = i == self.best_index
            label = (
                f"{lr:.0e}" + (" (diverged)" if self.diverged[i] else "") + (" *" if best else "")
            )
            ax.plot(steps, self.losses[i], "o", ms=3, color=color, alpha=0.7)
            if not self.diverged[i]:
                intercept = np.nanmean(self.losses[i]) - self.slopes[i] * steps.mean()
                ax.plot(
                    steps,
                    intercept + self.slopes[i] * steps,
                    "-",
                    color=color,
                    lw=3 if best else 1,
                    label=label,
                )
            else:
                ax.plot([], [], "x", color=color, label=label)
        ax.set_xlabel("batch")
        ax.set_ylabel("training loss")
        ax.set_title("learning-rate range test: batch losses and fitted lines (* = pick)")
        ax.legend(title="lr", fontsize=7, ncol=2)
        return ax


def lr_range_test(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Sequence[Any]],
    *,
    lrs: Sequence[float] | np.ndarray | None = None,
    num_batches: int = 10,
    optimizer: str | OptimizerFactory = "sgd",
    num_bootstrap: int = 200,
    stability: float = 0.9,
    divergence_threshold: float | None = 4.0,
    random_state: NumpyRandomState = 0,
) -> LRRangeTestResult:
    """Pick a learning rate by the slope of the batch losses each candidate produces.

    Every candidate starts from the model's current weights, with a fresh optimizer and the same
    global random state (so dropout masks match), and trains on the same ``num_batches`` batches.
    The model comes back exactly as it was: weights, buffers, train/eval modes, ``requires_grad``,
    ``.grad`` and the global random state.

    Args:
        model: any ``nn.Module``; it is trained in train mode during the test.
        loss_fn: ``loss_fn(model(inputs), targets)`` returns a scalar loss.
        batches: an iterable of ``(inputs, targets)`` pairs, e.g. a ``DataLoader``; the first
            ``num_batches`` are taken once and reused for every candidate.
        lrs: candidate learning rates (positive); ``default_lrs()`` when None.
        num_batches: batches per candidate (at least 2 to fit a line).
        optimizer: ``"sgd"``, ``"momentum"`` (SGD with momentum 0.9), ``"adam"``, ``"adamw"`` or
            a callable ``(params, lr) -> Optimizer``.
        num_bootstrap: resamples of the batches for the slope intervals (0 disables them).
        stability: share of resamples the pick must win to count as ``stable``.
        divergence_threshold: a candidate has diverged (is stopped, never picked) once a batch
            loss exceeds this multiple (> 1) of its first batch loss. 4 is the multiple at
            which fastai's ``lr_find`` stops (it compares a smoothed loss with its best so far;
            torch-lr-finder's ``diverge_th`` is 5). It applies when the first loss is positive
            (cross-entropy, squared error); None keeps only the non-finite rule.
        random_state: randomness of the bootstrap: an int seed, a ``np.random.Generator`` (used
            as is) or ``RandomState``, or None (seeded by the system).

    Returns:
        ``LRRangeTestResult``.

    Example:
        >>> model = nn.Linear(3, 2)
        >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,))) for _ in range(5)]
        >>> result = lr_range_test(model, nn.functional.cross_entropy, data, num_batches=5)
        >>> result.losses.shape
        (13, 5)
    """
    candidates = _check_lrs(lrs)
    check_number("num_batches", num_batches, low=2, integer=True)
    check_number("num_bootstrap", num_bootstrap, low=0, integer=True)
    check_number("stability", stability, low=0.0, high=1.0)
    if divergence_threshold is not None:
        check_number("divergence_threshold", divergence_threshold, low=1.0, low_inclusive=False)
    make_optimizer = _optimizer_factory(optimizer)
    chosen = list(itertools.islice(iter(batches), num_batches))
    if len(chosen) < num_batches:
        raise ValueError(
            f"batches must yield at least num_batches={num_batches} batches; got {len(chosen)}"
        )
    device = model_device(model)
    chosen = [_to_device(batch, device) for batch in chosen]

    losses = np.full((len(candidates), num_batches), np.nan)
    diverged = np.zeros(len(candidates), dtype=bool)
    with preserved(model) as start:
        assert start is not None
        start_rng = get_rng_state()
        for i, lr in enumerate(candidates):
            restore_model(model, start)
            set_rng_state(start_rng)
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            opt = make_optimizer(params, float(lr))
            for b, (inputs, targets) in enumerate(chosen):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(inputs), targets)
                value = float(loss.detach())
                if not math.isfinite(value):
                    diverged[i] = True
                    break
                losses[i, b] = value
                if _exploded(value, losses[i, 0], divergence_threshold):
                    diverged[i] = True  # training on would only waste steps
                    break
                loss.backward()
                opt.step()

    slopes = _slopes(np.arange(num_batches, dtype=float), losses)
    best = _pick(slopes, diverged)
    drops = np.where(diverged, -np.inf, losses[:, 0] - losses[:, -1])
    naive = int(np.argmax(drops)) if np.isfinite(drops).any() and drops.max() > 0 else None

    intervals, frequency = _bootstrap(losses, diverged, num_bootstrap, random_state)
    unstable_neighbour = None if best is None else _diverged_neighbour(candidates, diverged, best)
    stable = (
        best is not None
        and num_bootstrap > 0
        and frequency[best] >= stability
        and unstable_neighbour is None
    )
    if best is None:
        message = "no candidate's loss decreased (no negative slope); try smaller learning rates"
        if diverged.all():
            message = "every candidate diverged; try smaller learning rates"
    else:
        message = (
            f"best lr {candidates[best]:.3g} wins {frequency[best]:.0%} of "
            f"{num_bootstrap} bootstrap resamples"
        )
        if num_bootstrap == 0:  # nothing measured, nothing to warn about
            message = f"best lr {candidates[best]:.3g} (num_bootstrap=0: stability not measured)"
        elif frequency[best] < stability:
            message += f" (below {stability:.0%}: the pick is not stable; use more batches)"
        if unstable_neighbour is not None:
            message += (
                f"; its neighbour in the grid, lr {candidates[unstable_neighbour]:.3g}, "
                "diverged, so the pick sits at the edge of divergence: not stable; a smaller lr "
                "is safer"
            )
        if unstable_neighbour is not None or (num_bootstrap > 0 and not stable):
            warnings.warn(f"lr_range_test: {message}", stacklevel=2)
    return LRRangeTestResult(
        lrs=candidates,
        losses=losses,
        slopes=slopes,
        slope_intervals=intervals,
        diverged=diverged,
        best_lr=None if best is None else float(candidates[best]),
        naive_best_lr=None if naive is None else float(candidates[naive]),
        pick_frequency=frequency,
        stable=bool(stable),
        message=message,
    )


def _check_lrs(lrs: Sequence[float] | np.ndarray | None) -> np.ndarray:
    if lrs is None:
        return default_lrs()
    values = np.asarray(lrs, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"lrs must be a non-empty 1-d sequence of learning rates; got {lrs!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"lrs must all be finite and > 0; got {values.tolist()}")
    return values


def _optimizer_factory(optimizer: str | OptimizerFactory) -> OptimizerFactory:
    if callable(optimizer):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} or a callable (params, lr); "
            f"got {optimizer!r}"
        )
    return OPTIMIZERS[optimizer]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


def _exploded(value: float, first: float, threshold: float | None) -> bool:
    """Whether a finite loss crossed the divergence threshold (only for a positive first loss,
    where a multiple of it means "grew")."""
    return threshold is not None and first > 0 and value > threshold * first


def _diverged_neighbour(candidates: np.ndarray, diverged: np.ndarray, pick: int) -> int | None:
    """Index of a diverged candidate next to ``pick`` in the sorted grid (the larger one first),
    or None."""
    order = np.argsort(candidates, kind="stable")
    rank = int(np.flatnonzero(order == pick)[0])
    for neighbour in (rank + 1, rank - 1):
        if 0 <= neighbour < len(order) and diverged[order[neighbour]]:
            return int(order[neighbour])
    return None


def _slopes(steps: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Least-squares slopes of ``losses[..., :]`` against ``steps[..., :]`` (broadcasting)."""
    centered = steps - steps.mean(axis=-1, keepdims=True)
    variance = (centered**2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        covariance = (centered * (losses - losses.mean(axis=-1, keepdims=True))).sum(axis=-1)
        return np.where(variance > 0, covariance / variance, np.nan)


def _pick(slopes: np.ndarray, diverged: np.ndarray) -> int | None:
    """Index of the steepest negative, finite slope of a non-diverged candidate."""
    usable = np.where(diverged | ~np.isfinite(slopes) | (slopes >= 0), np.inf, slopes)
    return None if np.isinf(usable).all() else int(np.argmin(usable))


def _bootstrap(
    losses: np.ndarray, diverged: np.ndarray, num_bootstrap: int, random_state: NumpyRandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of the slopes and how often each candidate wins, over resamples."""
    n_lrs, num_batches = losses.shape
    if num_bootstrap == 0:
        return np.full((n_lrs, 2), np.nan), np.zeros(n_lrs)
    rng = numpy_generator(random_state)
    index = rng.integers(0, num_batches, size=(num_bootstrap, num_batches))  # paired across lrs
    sampled = losses[:, index]  # (n_lrs, num_bootstrap, num_batches)
    slopes = _slopes(index.astype(float), sampled)  # (n_lrs, num_bootstrap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        intervals = np.nanpercentile(slopes, [2.5, 97.5], axis=1).T
    # _pick for every resample at once: the steepest usable slope, no pick where none is usable
    usable = np.where(diverged[:, None] | ~np.isfinite(slopes) | (slopes >= 0), np.inf, slopes)
    picks = usable.argmin(axis=0)[np.isfinite(usable).any(axis=0)]
    frequency = np.bincount(picks, minlength=n_lrs) / num_bootstrap
    return intervals, frequency
