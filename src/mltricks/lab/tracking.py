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

How it plugs in: the experiment knows nothing of it. ``runs.execute(..., tracker=Tracker(...))``
opens a tracker run (``Tracker.session``) around each seed and around ``summarize``, and hears
each epoch through ``engine.on_epoch``.

What can go wrong, and when it is said:

- before any run starts, ``Tracker(kind, out=...)`` checks everything it can, once, and raises
  ``TrackingError`` (``MissingExtraError`` for a missing extra), which the command prints in one
  line with exit status 2: an ``MLFLOW_TRACKING_URI`` MLflow cannot track to (a folder, which
  MLflow 3 refuses as its "filesystem backend", or an unknown scheme), an SQLite store that is not
  a regular file, not a database, read-only or broken (MLflow cannot open it), and a default
  artifact folder ``<--out>/mlartifacts`` that is not a folder;
- while a run is tracked, a tracker failure (a full disk under TensorBoard, an artifact store that
  refuses a file, a server that goes away) never fails the run nor loses a result: the session
  keeps the first failure as one line naming the tracker and the cause (``Session.failure``),
  tracking stops for the rest of that run, and the run says so in ``log.txt``, in
  ``status.json`` (``tracking_error``) and on the console.

Several runs into one SQLite store at once (two ``mltricks run --track mlflow`` on one ``--out``)
are safe: MLflow creates and migrates a new store's tables, and Accelerate looks an experiment up
before creating it, both without a lock of their own, so each process does both under an
inter-process file lock beside the store (``mlflow.db.lock``); later writes wait on SQLite's busy
timeout, which MLflow sets on every session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import sqlite3
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltricks._utils.extras import require_extra

if TYPE_CHECKING:
    from mltricks.lab.experiment import RunContext

__all__ = ["TRACKERS", "Session", "Tracker", "TrackingError", "mlflow_tracking_uri"]

TRACKERS = ("tensorboard", "mlflow")  # --track values; each is also the name of its extra
# how long a process waits for another one that creates or migrates the same SQLite store
LOCK_TIMEOUT_S = 60.0
# MLflow tracking-store schemes (mlflow.tracking._tracking_service.utils registers the same);
# plugins add theirs under the "mlflow.tracking_store" entry point group
MLFLOW_SCHEMES = (
    "",
    "file",
    "sqlite",
    "http",
    "https",
    "databricks",
    "postgresql",
    "mysql",
    "mssql",
)
# database servers: opening one from here would wait on MLflow's connection retries, so they are
# first contacted when the run starts (a failure then is a warning of the run)
DATABASE_SERVERS = ("postgresql", "mysql", "mssql")
USE_INSTEAD = (
    "use sqlite:///PATH/mlflow.db, http(s)://HOST:PORT or a database URL (postgresql://...), "
    "or unset MLFLOW_TRACKING_URI to keep the store in --out"
)


class TrackingError(ValueError):
    """``--track`` cannot work with what it was given; found before a run starts (one line)."""


def mlflow_tracking_uri(out: str | os.PathLike[str]) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store in ``out`` (``out/mlflow.db``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(out).resolve() / 'mlflow.db'}"


def require_tracker(kind: str) -> None:
    """Raise unless ``kind`` is one of ``TRACKERS`` and its library is installed.

    Raises:
        ValueError: ``kind`` is not one of ``TRACKERS``.
        MissingExtraError: the tracker's library is not installed (names the extra).
    """
    if kind not in TRACKERS:
        raise ValueError(f"kind must be one of {', '.join(TRACKERS)}; got {kind!r}")
    require_extra(kind, f"--track {kind}")


class Tracker:
    """What ``--track`` asked for, checked once: the tracker and where MLflow's store is.

    ``mltricks run --track KIND`` makes one and passes it to every ``runs.execute``.

    Args:
        kind: ``"tensorboard"`` or ``"mlflow"``.
        out: the root of the run folders (``--out``): MLflow's default store goes there.

    Raises:
        ValueError: ``kind`` is not one of ``TRACKERS``.
        MissingExtraError: the tracker's library is not installed (names the extra).
        TrackingError: MLflow's store cannot be used (see the module docstring); an SQLite store
            is created and migrated here, under its lock.

    Example:
        >>> Tracker("tensorboard", out="runs").kind
        'tensorboard'
        >>> Tracker("wandb", out="runs")
        Traceback (most recent call last):
        ValueError: kind must be one of tensorboard, mlflow; got 'wandb'
    """

    def __init__(self, kind: str, *, out: str | os.PathLike[str]) -> None:
        require_tracker(kind)
        self.kind = kind
        self.out = Path(out)
        self.uri = mlflow_tracking_uri(out) if kind == "mlflow" else ""
        # artifacts go beside the default store; a store the user named decides for itself
        self.artifacts = None if os.environ.get("MLFLOW_TRACKING_URI") else self.out / "mlartifacts"
        if kind == "mlflow":
            _check_mlflow_store(self.uri, self.out)

    @contextmanager
    def session(
        self, ctx: RunContext, *, experiment: str, label: str, cfg: Any, **extra: Any
    ) -> Iterator[Session]:
        """A tracker run for one seed (``label`` ``seed-<k>``) or the summary of the run in
        ``ctx.path``; the figures the block saved are logged when it ends.

        A failure of the tracker never escapes: it is kept in ``Session.failure`` and the
        session logs nothing more. What the block raises propagates (the tracker run is then
        closed as failed).
        """
        if not ctx.run.writer:  # a worker process under accelerate launch: the main one tracks
            yield Session(None, self.kind)
            return
        config = {
            **_flat(dataclasses.asdict(cfg)),
            "experiment": experiment,
            "preset": ctx.preset,
            "data": str(ctx.data) if ctx.data else "None",
            "run_folder": str(ctx.run.folder),
            **_flat(extra),
        }
        before = _figure_stamps(ctx.path, ctx.run.figures)
        with _writer_threads_quiet():
            session = Session.start(self, experiment, ctx.path, ctx.run.folder, label)
            session.configure(config)
            failed = True
            try:
                yield session
                failed = False
            finally:
                after = _figure_stamps(ctx.path, ctx.run.figures)
                for figure in ctx.run.figures:
                    stamp = after.get(figure["file"])
                    if stamp is not None and stamp != before.get(figure["file"]):
                        session.log_figure(ctx.path / figure["file"], figure.get("caption", ""))
                session.finish(failed)


class Session:
    """One open tracker run (``tracker`` None where nothing is logged: a worker process, or a
    session whose tracker failed).

    Every call to the tracker goes through ``_call``: the first failure is kept in ``failure``
    as one line naming the tracker, what it was doing and the cause, the tracker run is closed
    as well as it can be, and later calls do nothing.
    """

    def __init__(self, tracker: Any, kind: str, previous_uri: str | None = None) -> None:
        self.tracker = tracker
        self.kind = kind
        self.previous_uri = previous_uri
        self.failure: str | None = None
        self.steps: Counter[str] = Counter()

    @classmethod
    def start(
        cls, tracker: Tracker, experiment: str, path: Path, folder: Path, label: str
    ) -> Session:
        """A started session, or one that logs nothing and says why in ``failure``."""
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        try:
            with _quiet():
                started = _start(tracker, experiment, path, folder, label)
        except Exception as error:
            session = cls(None, tracker.kind)
            session.failure = _failure(tracker.kind, "starting its run", error)
            if tracker.kind == "mlflow":
                with contextlib.suppress(Exception), _quiet():
                    _end_mlflow_run(failed=True, previous_uri=previous)
            return session
        return cls(started, tracker.kind, previous)

    def _call(self, doing: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self.tracker is None:
            return
        try:
            with _quiet():
                call(*args, **kwargs)
        except Exception as error:
            self.failure = _failure(self.kind, doing, error)
            tracker, self.tracker = self.tracker, None
            with contextlib.suppress(Exception), _quiet():
                _close(tracker, self.kind, failed=True, previous_uri=self.previous_uri)

    def configure(self, config: Mapping[str, Any]) -> None:
        self._call("logging the config", lambda: self.tracker.store_init_configuration(config))

    def log_epoch(self, row: Mapping[str, Any], desc: str) -> None:
        """An ``engine.on_epoch`` listener: ``<desc>/<name>`` at step 1, 2, ... per ``desc``."""
        if self.tracker is None:
            return
        self.steps[desc] += 1
        values = {f"{desc}/{key}": value for key, value in _scalars(row).items()}
        self._call("logging an epoch", lambda: self.tracker.log(values, step=self.steps[desc]))

    def log_final(self, metrics: Any) -> None:
        """The scalars of a seed's metrics, at step 0."""
        if isinstance(metrics, Mapping):
            self._call("logging the metrics", lambda: self.tracker.log(_scalars(metrics), step=0))

    def log_estimates(self, estimates: Mapping[str, Any]) -> None:
        """Means and interval ends of ``Estimate`` values; a plain number is a mean (as the lab
        stores what ``summarize`` returns)."""
        values = {f"{key}/mean": value for key, value in _scalars(estimates).items()}
        for key, value in estimates.items():
            for end in ("mean", "low", "high"):
                number = getattr(value, end, None)
                if isinstance(number, int | float) and math.isfinite(number):
                    values[f"{key}/{end}"] = float(number)
        if values:
            self._call("logging the summary", lambda: self.tracker.log(values, step=0))

    def log_figure(self, path: Path, caption: str) -> None:
        if path.exists():
            self._call(
                f"logging the figure {path.name}",
                _log_figure,
                self.tracker,
                self.kind,
                path,
                caption,
            )

    def finish(self, failed: bool) -> None:
        """Close the tracker run (MLflow: ``FAILED`` when the block raised)."""
        tracker = self.tracker
        self._call(
            "closing its run",
            lambda: _close(tracker, self.kind, failed=failed, previous_uri=self.previous_uri),
        )
        self.tracker = None


@contextmanager
def _writer_threads_quiet() -> Iterator[None]:
    """Keep TensorBoard's event-writer thread from printing a traceback when its write fails
    (a full disk): the writer raises the same error again in this thread at its next call, where
    the session reports it in one line. Other threads' errors print as before."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not type(args.thread).__module__.startswith("tensorboard."):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


@contextmanager
def _quiet() -> Iterator[None]:
    """Without the tracker libraries' own deprecation warnings (SQLAlchemy's under MLflow),
    which would otherwise land in the run's log as if the experiment raised them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _failure(kind: str, doing: str, error: BaseException) -> str:
    """One line: the tracker, what it was doing, the cause (the first line of it)."""
    cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(cause) > 300:
        cause = cause[:297] + "..."
    return f"--track {kind} failed while {doing}: {type(error).__name__}: {cause}".rstrip(": ")


def _start(tracker: Tracker, experiment: str, path: Path, folder: Path, label: str) -> Any:
    """A started Accelerate tracker for one seed (or the summary) of the run ``folder``, whose
    files (TensorBoard's events) go to ``path``: the folder itself, or the scratch folder of a
    seed's task (``Run.folder``)."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker

    if tracker.kind == "tensorboard":
        started = TensorBoardTracker(label, path / "tensorboard")
        started.start()
        return started
    import mlflow

    mlflow.set_tracking_uri(tracker.uri)  # sets MLFLOW_TRACKING_URI too; _close puts it back
    started = MLflowTracker(
        experiment_name=f"mltricks/{experiment}",
        logging_dir=str(tracker.artifacts.resolve()) if tracker.artifacts else None,
        run_name=f"{folder.name}/{label}",
        tags={"mltricks.run_folder": str(folder), "mltricks.seed": label.removeprefix("seed-")},
    )
    # the experiment is looked up, then created when missing: one process at a time
    with _store_lock(tracker.uri):
        started.start()
    return started


def _log_figure(tracker: Any, kind: str, path: Path, caption: str) -> None:
    if kind == "tensorboard":
        import matplotlib.image

        image = matplotlib.image.imread(path)[..., :3]  # (H, W, RGB) in [0, 1]
        tracker.log_images({f"figures/{path.stem}": image[None]}, dataformats="NHWC")
        if caption:
            tracker.log({f"figures/{path.stem}": caption}, step=0)
    else:
        tracker.log_artifact(str(path), artifact_path="figures")


def _close(tracker: Any, kind: str, *, failed: bool, previous_uri: str | None) -> None:
    if kind == "mlflow":
        # Accelerate's finish() ends the run as FINISHED
        _end_mlflow_run(failed=failed, previous_uri=previous_uri, tracker=tracker)
    else:
        tracker.finish()


def _end_mlflow_run(*, failed: bool, previous_uri: str | None, tracker: Any = None) -> None:
    """End the active MLflow run and put the user's ``MLFLOW_TRACKING_URI`` back (None unsets
    what ``_start`` set), also when ending fails."""
    import mlflow

    try:
        if failed or tracker is None:
            if mlflow.active_run() is not None:
                mlflow.end_run(status="FAILED")
        else:
            tracker.finish()
    finally:
        mlflow.set_tracking_uri(previous_uri)  # type: ignore[arg-type]


# --- MLflow's store, checked before any run starts ------------------------------------------


def _check_mlflow_store(uri: str, out: Path) -> None:
    """Raise ``TrackingError`` unless MLflow can track to ``uri``; create and migrate an SQLite
    store once, under its lock (several processes may start at the same moment)."""
    user_set = bool(os.environ.get("MLFLOW_TRACKING_URI"))
    where = f"MLFLOW_TRACKING_URI={uri!r}" if user_set else "the MLflow store"
    scheme = uri.partition(":")[0].split("+")[0].lower() if "://" in uri else ""
    if scheme not in (*MLFLOW_SCHEMES, *_plugin_schemes()):
        raise TrackingError(
            f"--track mlflow: {where}: unknown scheme {scheme + '://'!r}; {USE_INSTEAD}"
        )
    if scheme in DATABASE_SERVERS:
        return
    database = _sqlite_path(uri)
    if database is not None:
        _check_sqlite_file(database, where)
    artifacts = out.resolve() / "mlartifacts"
    if not user_set and (artifacts.exists() or artifacts.is_symlink()) and not artifacts.is_dir():
        raise TrackingError(
            f"--track mlflow: the artifact folder {str(artifacts)!r} is not a folder; "
            "move it, or choose another --out"
        )
    from mlflow import MlflowClient

    with _store_lock(uri):
        try:
            with _quiet():
                MlflowClient(tracking_uri=uri)  # opens the store: creates and migrates SQLite
        except Exception as error:
            cause = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else ""
            raise TrackingError(
                f"--track mlflow: {where} cannot be used: {type(error).__name__}: {cause}"
                + (f"; {USE_INSTEAD}" if user_set else "")
            ) from None


def _plugin_schemes() -> tuple[str, ...]:
    """Schemes MLflow plugins register for tracking stores."""
    try:
        return tuple(e.name for e in importlib.metadata.entry_points(group="mlflow.tracking_store"))
    except Exception:  # a broken distribution's metadata: no plugin
        return ()


def _sqlite_path(uri: str) -> Path | None:
    """The file of an SQLite URI (None for other URIs and for an in-memory database)."""
    if not uri.lower().startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    try:
        database = make_url(uri).database
    except Exception:  # MLflow's own check says what is wrong with it
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _check_sqlite_file(path: Path, where: str) -> None:
    """Fail fast where MLflow would retry for minutes (a folder named ``mlflow.db``, a file that
    is not a database) or fail at the first write (a read-only store)."""
    place = f"{where} {str(path)!r}" if where == "the MLflow store" else f"{where}: {str(path)!r}"
    if (path.exists() or path.is_symlink()) and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise TrackingError(
            f"--track mlflow: {place} is {kind}, not an SQLite file; move it, or choose "
            "another --out or MLFLOW_TRACKING_URI"
        )
    folder = path.parent
    if path.is_file():
        if not os.access(path, os.R_OK | os.W_OK):
            raise TrackingError(f"--track mlflow: {place} is read-only")
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.OperationalError:
            pass  # busy or locked by another writer: MLflow waits on it
        except sqlite3.DatabaseError as error:
            raise TrackingError(
                f"--track mlflow: {place} is not an SQLite database ({error}); move it, or "
                "choose another --out or MLFLOW_TRACKING_URI"
            ) from None
    elif folder.is_dir() and not os.access(folder, os.W_OK):
        raise TrackingError(f"--track mlflow: {place}: its folder is read-only")


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold ``<store>.lock`` (an inter-process lock) when ``uri`` is an SQLite file."""
    database = _sqlite_path(uri)
    if database is None:
        yield
        return
    from filelock import FileLock, Timeout  # a dependency of torch: always installed

    lock = FileLock(f"{database}.lock", timeout=LOCK_TIMEOUT_S)
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise TrackingError(
            f"--track mlflow: another process has held {lock.lock_file!r} for over "
            f"{LOCK_TIMEOUT_S:.0f} s; is a run stuck while opening the store?"
        ) from None
    except OSError as error:
        raise TrackingError(
            f"--track mlflow: cannot lock {f'{database}.lock'!r}: {error.strerror or error}"
        ) from None
    try:
        yield
    finally:
        lock.release()


# --- values as the trackers take them --------------------------------------------------------


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
