"""Run tracking: every seed of a run logged to TensorBoard or MLflow through Accelerate's trackers.

``mltricks run NAME --track tensorboard|mlflow`` gives each seed its own tracker run with:

- the config (every ``Config`` field, plus experiment, preset, seed, data and run folder) as
  hyperparameters;
- each epoch of every ``engine.fit`` call (the ``History`` rows: ``train_<log>``, ``val_<metric>``,
  ``lr``, ``seconds``, ...) as ``<desc>/<name>`` at step 1, 2, ... per ``desc`` (``train/train_loss``);
- the seed's final metrics (the scalars of ``metrics.json``) under their own names;
- the figures it saved, as images (TensorBoard) or artifacts under ``figures/`` (MLflow).

An experiment with a ``summarize`` step gets one more tracker run, ``summary``: the mean and 95%
interval of each metric over seeds (``<name>/mean``, ``/low``, ``/high``) and the cross-seed
figures. Where it goes:

- TensorBoard: ``<run folder>/tensorboard/seed-<k>/`` (``tensorboard --logdir runs``);
- MLflow: the experiment ``mltricks/<name>``, runs named ``<run folder>/seed-<k>`` with tags
  ``mltricks.run_folder`` and ``mltricks.seed``, in ``MLFLOW_TRACKING_URI`` when set, else in the
  SQLite store ``<--out>/mlflow.db`` with artifacts in ``<--out>/mlartifacts`` (no server).

The trackers are optional extras (``mltricks[tensorboard]``, ``mltricks[mlflow]``);
``tracked`` raises ``MissingExtraError`` naming the extra when one is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import types
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mltricks._utils.extras import require_extra

TRACKERS = ("tensorboard", "mlflow")  # --track values; each is also the name of its extra

_sessions: list[_Session] = []  # the tracker runs open now, innermost last


def mlflow_tracking_uri(out: str | os.PathLike[str]) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store in ``out`` (``out/mlflow.db``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(out).resolve() / 'mlflow.db'}"


def tracked(
    module: types.ModuleType, kind: str, *, name: str, out: str | os.PathLike[str]
) -> types.ModuleType:
    """A copy of an experiment module whose ``run`` (and ``summarize``) log to a tracker.

    Args:
        module: an experiment module (``registry.load(name)``).
        kind: ``"tensorboard"`` or ``"mlflow"``.
        name: the experiment's name (``positional-encoding``): MLflow's experiment is
            ``mltricks/<name>``.
        out: the root of the run folders (``--out``): MLflow's default store goes there.

    Raises:
        ValueError: ``kind`` is not one of ``TRACKERS``.
        MissingExtraError: the tracker's library is not installed (names the extra).
    """
    require_tracker(kind)
    copy = types.ModuleType(module.__name__, module.__doc__)
    copy.__dict__.update(module.__dict__)
    tracker_args = (kind, name, Path(out))
    copy.run = _wrap_run(module.run, *tracker_args)  # type: ignore[attr-defined]
    if hasattr(module, "summarize"):
        copy.summarize = _wrap_summarize(module.summarize, *tracker_args)  # type: ignore[attr-defined]
    return copy


def require_tracker(kind: str) -> None:
    """Raise unless ``kind`` is one of ``TRACKERS`` and its library is installed.

    Raises:
        ValueError: ``kind`` is not one of ``TRACKERS``.
        MissingExtraError: the tracker's library is not installed (names the extra).
    """
    if kind not in TRACKERS:
        raise ValueError(f"kind must be one of {', '.join(TRACKERS)}; got {kind!r}")
    require_extra(kind, f"--track {kind}")


def log_epoch(row: Mapping[str, Any], desc: str) -> None:
    """Log one ``engine.fit`` epoch row to the tracker run open now (nothing when none is)."""
    if _sessions:
        _sessions[-1].log_epoch(row, desc)


def _wrap_run(run: Callable[..., Any], kind: str, name: str, out: Path) -> Callable[..., Any]:
    @functools.wraps(run)
    def tracked_run(cfg: Any, ctx: Any) -> Any:
        with _session(kind, name, out, ctx, f"seed-{ctx.seed}", cfg, seed=ctx.seed) as session:
            metrics = run(cfg, ctx)
            if isinstance(metrics, Mapping):
                session.log_final(metrics)
            return metrics

    return tracked_run


def _wrap_summarize(
    summarize: Callable[..., Any], kind: str, name: str, out: Path
) -> Callable[..., Any]:
    # the signature is the wrapped one (inspect.signature follows __wrapped__): the lab still
    # tells ``summarize(cfg, results, ctx)`` from ``summarize(cfg, summary, results, ctx)``
    @functools.wraps(summarize)
    def tracked_summarize(cfg: Any, *args: Any) -> Any:
        ctx = args[-1]
        with _session(kind, name, out, ctx, "summary", cfg, seeds=list(ctx.seeds)) as session:
            extra = summarize(cfg, *args)
            if len(args) == 3 and isinstance(args[0], Mapping):  # the lab's summary over seeds
                session.log_estimates(args[0])
            if isinstance(extra, Mapping):
                session.log_estimates(extra)
            return extra

    return tracked_summarize


@contextmanager
def _session(
    kind: str, name: str, out: Path, ctx: Any, label: str, cfg: Any, **extra: Any
) -> Iterator[_Session]:
    """Open a tracker run for one seed (or the summary), log the figures it saved, close it."""
    if not ctx.run.writer:  # a worker process under accelerate launch: the main one tracks
        yield _Session(None)
        return
    config = {
        **_flat(dataclasses.asdict(cfg)),
        "experiment": name,
        "preset": ctx.preset,
        "data": str(ctx.data) if ctx.data else "None",
        "run_folder": str(ctx.path),
        **_flat(extra),
    }
    before = _figure_stamps(ctx.path, ctx.run.figures)
    session = _Session(*_start(kind, name, out, ctx.path, label), kind=kind)
    session.configure(config)
    _sessions.append(session)
    failed = True
    try:
        yield session
        failed = False
    finally:
        _sessions.remove(session)
        after = _figure_stamps(ctx.path, ctx.run.figures)
        for figure in ctx.run.figures:
            stamp = after.get(figure["file"])
            if stamp is not None and stamp != before.get(figure["file"]):
                session.log_figure(ctx.path / figure["file"], figure.get("caption", ""))
        session.finish(failed)


def _quietly(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function`` without the tracker libraries' own deprecation warnings (SQLAlchemy's
    under MLflow), which would otherwise land in the run's log as if the experiment raised them."""

    @functools.wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return function(*args, **kwargs)

    return quiet


@_quietly
def _start(kind: str, name: str, out: Path, path: Path, label: str) -> tuple[Any, str | None]:
    """A started Accelerate tracker for one seed (or the summary) of the run in ``path``, and
    the ``MLFLOW_TRACKING_URI`` to put back when it finishes."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker

    previous = os.environ.get("MLFLOW_TRACKING_URI")
    if kind == "tensorboard":
        tracker = TensorBoardTracker(label, path / "tensorboard")
    else:
        import mlflow

        mlflow.set_tracking_uri(mlflow_tracking_uri(out))  # sets MLFLOW_TRACKING_URI too
        tracker = MLflowTracker(
            experiment_name=f"mltricks/{name}",
            # artifacts beside the default store; a store the user named decides for itself
            logging_dir=None if previous else str(Path(out).resolve() / "mlartifacts"),
            run_name=f"{path.name}/{label}",
            tags={"mltricks.run_folder": str(path), "mltricks.seed": label.removeprefix("seed-")},
        )
    tracker.start()
    return tracker, previous


class _Session:
    """One open tracker run (``tracker`` None on worker processes, where nothing is logged)."""

    def __init__(self, tracker: Any, previous_uri: str | None = None, *, kind: str = "") -> None:
        self.tracker = tracker
        self.previous_uri = previous_uri
        self.kind = kind
        self.steps: Counter[str] = Counter()

    @_quietly
    def configure(self, config: Mapping[str, Any]) -> None:
        if self.tracker is not None:
            self.tracker.store_init_configuration(config)

    @_quietly
    def log_epoch(self, row: Mapping[str, Any], desc: str) -> None:
        if self.tracker is None:
            return
        self.steps[desc] += 1
        values = {f"{desc}/{key}": value for key, value in _scalars(row).items()}
        self.tracker.log(values, step=self.steps[desc])

    @_quietly
    def log_final(self, metrics: Mapping[str, Any]) -> None:
        if self.tracker is not None:
            self.tracker.log(_scalars(metrics), step=0)

    @_quietly
    def log_estimates(self, estimates: Mapping[str, Any]) -> None:
        """Means and interval ends of ``Estimate`` values; a plain number is a mean (as the lab
        stores what ``summarize`` returns)."""
        values = {f"{key}/mean": value for key, value in _scalars(estimates).items()}
        for key, value in estimates.items():
            for end in ("mean", "low", "high"):
                number = getattr(value, end, None)
                if isinstance(number, int | float) and math.isfinite(number):
                    values[f"{key}/{end}"] = float(number)
        if self.tracker is not None and values:
            self.tracker.log(values, step=0)

    @_quietly
    def log_figure(self, path: Path, caption: str) -> None:
        if self.tracker is None or not path.exists():
            return
        if self.kind == "tensorboard":
            import matplotlib.image

            image = matplotlib.image.imread(path)[..., :3]  # (H, W, RGB) in [0, 1]
            self.tracker.log_images({f"figures/{path.stem}": image[None]}, dataformats="NHWC")
            if caption:
                self.tracker.log({f"figures/{path.stem}": caption}, step=0)
        else:
            self.tracker.log_artifact(str(path), artifact_path="figures")

    @_quietly
    def finish(self, failed: bool) -> None:
        if self.tracker is None:
            return
        if self.kind == "mlflow":
            import mlflow

            if failed:  # Accelerate's finish() ends the run as FINISHED
                mlflow.end_run(status="FAILED")
            else:
                self.tracker.finish()
            # put the user's MLFLOW_TRACKING_URI back; None unsets what _start set
            mlflow.set_tracking_uri(self.previous_uri)  # type: ignore[arg-type]
        else:
            self.tracker.finish()


def _scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers and booleans of ``values`` as floats (lists and tables left out)."""
    found = {}
    for key, value in values.items():
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()  # NumPy and torch scalars
        if isinstance(value, bool | int | float) and math.isfinite(value):
            found[str(key)] = float(value)
    return found


def _flat(config: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Hyperparameters both trackers take: scalars as they are, the rest as JSON text."""
    return {
        str(key): value
        if isinstance(value, bool | int | float | str)
        else json.dumps(value, default=str)
        for key, value in config.items()
    }


def _figure_stamps(path: Path, figures: list[dict[str, str]]) -> dict[str, int]:
    """Modification time of each listed figure file, to tell which ones a step saved."""
    stamps = {}
    for figure in figures:
        try:
            stamps[figure["file"]] = (path / figure["file"]).stat().st_mtime_ns
        except OSError:
            continue
    return stamps
