"""Run folders: ``runs/<experiment>/<timestamp>/`` written so a crash never leaves half a file.

Layout (DESIGN.md section 3): ``config.json``, ``metrics.json``, ``claims.json``, figures as PNG
(listed with captions in ``figures.json``), ``log.txt`` and ``status.json`` (``running``,
``done`` or ``failed``). JSON files and figures are written to a temporary file in the same
folder and renamed over the target, which is atomic on POSIX; ``log.txt`` only grows by whole
lines. Files are readable by others as ``open()`` would make them (0644 under the usual umask).
Folder names are claimed with ``mkdir``, so two processes writing to the same ``--out`` never
share a folder.

While a run is ``running``, its ``status.json`` carries a heartbeat rewritten every
``heartbeat_s`` seconds; a run whose heartbeat is older than a few of its own intervals (its
process was killed, on this host or another, or its process id was reused) reads as
``interrupted``. A write into the run folder that fails (a full disk, a read-only mount) raises
``OutputError``: the run is recorded as failed where that can still be written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np
import torch

from mltricks.lab import engine
from mltricks.lab.experiment import Claim, NotApplicable, RunContext
from mltricks.lab.stats import Estimate, mean_interval, proportion_interval

STATES = ("running", "done", "failed")
HEARTBEAT_S = 30.0
# a heartbeat older than this many intervals means the run's process is gone (two missed beats
# and some clock difference between hosts are tolerated)
STALE_HEARTBEATS = 3.0


class OutputError(OSError):
    """Writing into the run folder failed (a full disk, a read-only mount, a removed folder).

    Nothing more can be recorded there, so ``mltricks run`` stops rather than going on with the
    next experiment.
    """


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into one ``OutputError`` line."""
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error


def _read_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; run files get the mode open() gives (0644 under umask 022)
FILE_MODE = 0o666 & ~_read_umask()


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from NumPy/torch scalars and arrays, dataclasses, paths and tuples."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Estimate):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict | MappingProxyType):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (mode ``FILE_MODE``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    text = json.dumps(to_jsonable(value), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Run:
    """One run folder and its writers. Only the main process writes (``accelerate launch``).

    Every write that fails raises ``OutputError``. ``set_status("running", ...)`` starts a
    heartbeat thread that rewrites ``status.json`` every ``heartbeat_s`` seconds until the next
    ``set_status``.
    """

    def __init__(self, path: Path, *, writer: bool = True, heartbeat_s: float = HEARTBEAT_S):
        self.path = path
        self.writer = writer
        self.heartbeat_s = heartbeat_s
        self.figures: list[dict[str, str]] = []
        self._status: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop_beating = threading.Event()
        self._beating: threading.Thread | None = None

    @classmethod
    def create(cls, root: Path, experiment: str, **kwargs: Any) -> Run:
        """Claim a new folder ``root/<experiment>/<UTC timestamp>[-k]``."""
        parent = Path(root) / experiment
        with _writing(parent):
            parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        for attempt in range(1, 1000):
            path = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
            try:
                with _writing(path):
                    path.mkdir()
                return cls(path, **kwargs)
            except OutputError as error:
                if isinstance(error.__cause__, FileExistsError):
                    continue
                raise
        raise OutputError(f"could not create a run folder under {parent}")

    def write_json(self, name: str, value: Any) -> None:
        if self.writer:
            with _writing(self.path / name):
                atomic_write_json(self.path / name, value)

    def log(self, message: str) -> None:
        if not self.writer:
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        lines = "".join(f"[{stamp}] {line}\n" for line in str(message).splitlines() or [""])
        with (
            _writing(self.path / "log.txt"),
            open(self.path / "log.txt", "a", encoding="utf-8") as handle,
        ):
            handle.write(lines)

    def savefig(self, figure: Any, name: str, caption: str = "") -> None:
        import matplotlib.pyplot as plt

        if not self.writer:
            plt.close(figure)
            return
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "figure"
        target = self.path / f"{safe}.png"
        with _writing(target):
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{safe}.", suffix=".png")
            os.close(fd)
            try:
                figure.savefig(tmp, dpi=110, bbox_inches="tight")
                os.chmod(tmp, FILE_MODE)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
                plt.close(figure)
        self.figures = [f for f in self.figures if f["file"] != target.name]
        self.figures.append({"file": target.name, "caption": caption})
        self.write_json("figures.json", self.figures)

    def set_status(self, state: str, **info: Any) -> None:
        """Write ``status.json``; ``running`` carries a heartbeat kept fresh by a thread."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}; got {state!r}")
        if state != "running":
            self.stop_heartbeat()
        status = {"state": state, **info}
        if state == "running":
            status.update(heartbeat=time.time(), heartbeat_s=self.heartbeat_s)
        with self._lock:
            self.write_json("status.json", status)
            self._status = status  # only once written: a failed write leaves the old state
        if state == "running" and self.writer and self._beating is None:
            self._stop_beating.clear()
            self._beating = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
            self._beating.start()

    @property
    def state(self) -> str | None:
        """The state last written to ``status.json`` (None before the first)."""
        return self._status.get("state")

    def force_status(self, state: str, **info: Any) -> None:
        """Last resort on a full disk: overwrite ``status.json`` in place (its blocks are
        already allocated, so a short status fits where a new file cannot be made)."""
        self.stop_heartbeat()
        data = json.dumps(to_jsonable({"state": state, **info})).encode()
        with _writing(self.path / "status.json"), open(self.path / "status.json", "r+b") as handle:
            handle.write(data)
            handle.truncate()
        self._status = {"state": state, **info}

    def _beat(self) -> None:
        while not self._stop_beating.wait(self.heartbeat_s):
            with self._lock:
                if self._status.get("state") != "running":
                    return
                self._status["heartbeat"] = time.time()
                # a failed beat is not fatal: the run's own next write reports the failure
                with contextlib.suppress(OSError):
                    self.write_json("status.json", self._status)

    def stop_heartbeat(self) -> None:
        """Stop rewriting the heartbeat (the status then ages into ``interrupted``)."""
        if self._beating is not None:
            self._stop_beating.set()
            self._beating.join()
            self._beating = None


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import accelerate
    import matplotlib
    import sklearn
    import torchvision

    import mltricks

    return {
        "python": platform.python_version(),
        "mltricks": mltricks.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "accelerate": accelerate.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def summarize_metrics(per_seed: Sequence[dict[str, Any]]) -> dict[str, Estimate]:
    """Mean and 95% interval over seeds of every scalar metric.

    A metric returned as a boolean in every seed (a hit, a success) is a proportion: its interval
    is Wilson's, which stays inside [0, 1]; numbers get Student's t interval.
    """
    names: list[str] = []
    for metrics in per_seed:
        names += [k for k, v in metrics.items() if _is_scalar(v) and k not in names]
    summary = {}
    for name in names:
        raw = [m[name] for m in per_seed if _is_scalar(m.get(name))]
        values = [float(v) for v in raw]
        if len(values) > 1 and all(isinstance(v, bool | np.bool_) for v in raw):
            summary[name] = proportion_interval(int(sum(values)), len(values))
        else:
            summary[name] = mean_interval(values)
    return summary


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.number) or (
        isinstance(value, torch.Tensor) and value.numel() == 1
    )


VERDICT_LABELS = {True: "held", False: "not held", None: "not judged"}


def judge(
    claims: Sequence[Claim],
    summary: dict[str, Estimate],
    preset: str,
    num_seeds: int,
    *,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Each claim's verdict with the numbers it rests on.

    ``held`` is True/False when judged, None otherwise; ``verdict`` is the label a reader sees:
    ``held``, ``not held``, ``not judged`` (another preset, too few seeds), ``not applicable``
    (the claim raised ``NotApplicable``: ``reason`` says why) or ``defect`` (the claim reads a
    metric the run did not produce: a bug of the experiment, also written to ``log``).
    """
    verdicts = []
    for claim in claims:
        verdict = _judge_one(claim, summary, preset, num_seeds)
        missing = [m for m in claim.metrics if m not in summary]
        if log is not None and verdict["verdict"] == "defect":
            log(f"claim {claim.text!r}: {verdict['reason']}")
        elif log is not None and missing and verdict["verdict"] != "not applicable":
            log(
                f"claim {claim.text!r}: experiment defect: it lists metric(s) "
                f"{', '.join(map(repr, missing))}, which the run did not produce"
            )
        verdicts.append(verdict)
    return verdicts


def _judge_one(claim: Claim, summary: dict[str, Estimate], preset: str, num_seeds: int) -> dict:
    verdict: dict[str, Any] = {
        "text": claim.text,
        "held": None,
        "verdict": "not judged",
        "numbers": {m: summary[m].as_dict() for m in claim.metrics if m in summary},
        "presets": list(claim.presets),
    }
    if preset not in claim.presets:
        verdict["reason"] = f"judged on the {' / '.join(claim.presets)} preset only"
        return verdict
    if num_seeds < claim.min_seeds:
        verdict["reason"] = f"needs at least {claim.min_seeds} seeds, got {num_seeds}"
        return verdict
    missing = [m for m in claim.metrics if m not in summary]
    try:
        held = bool(claim.holds(summary))
    except NotApplicable as error:
        verdict.update(verdict="not applicable", reason=f"not applicable: {error}")
        return verdict
    except KeyError as error:
        key = error.args[0] if error.args else None
        if isinstance(key, str) and key not in summary:
            missing = [*missing, key] if key not in missing else missing
        else:
            verdict["reason"] = f"could not be judged: KeyError: {error}"
            return verdict
    except (TypeError, ValueError, ZeroDivisionError) as error:
        verdict["reason"] = f"could not be judged: {type(error).__name__}: {error}"
        return verdict
    if missing:
        verdict.update(
            verdict="defect",
            reason="experiment defect: the claim reads metric(s) "
            f"{', '.join(map(repr, missing))}, which the run did not produce",
        )
        return verdict
    verdict.update(held=held, verdict=VERDICT_LABELS[held])
    return verdict


def _timing(started: float, cpu_started: float) -> dict[str, float]:
    """Wall time, CPU time of this process (all its threads) and the machine's load average.

    On a shared machine the wall time grows with the other jobs; the CPU time much less, and
    the load average says how shared the machine was.
    """
    return {
        "duration_s": round(time.time() - started, 2),
        "cpu_s": round(time.process_time() - cpu_started, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


@dataclasses.dataclass
class _Job:
    """One experiment run: what ``execute`` was asked and where it writes."""

    name: str
    module: ModuleType
    config: Any
    preset: str
    seeds: tuple[int, ...]
    data: Path | None
    run: Run

    def context(self, seed: int) -> RunContext:
        return RunContext(
            seed=seed,
            seeds=self.seeds,
            preset=self.preset,
            device=engine.device(),
            data=self.data,
            run=self.run,
        )


def execute(
    name: str,
    module: ModuleType,
    config: Any,
    *,
    preset: str,
    seeds: Sequence[int],
    out: Path,
    data: Path | None = None,
    command: str = "",
) -> tuple[Path | None, str, str | None]:
    """Run one experiment over its seeds into a new run folder.

    Returns the folder, the final state (``done`` or ``failed``) and the error text if any.
    Nothing raised by the experiment escapes: it is recorded in ``status.json`` and ``log.txt``.

    Raises:
        OutputError: the run folder cannot be written (a full disk, a read-only mount); the
            failure is recorded where it still can be.
    """
    is_writer = engine.is_main_process()
    run = Run.create(out, name) if is_writer else Run(Path(out) / name / "worker", writer=False)
    job = _Job(name, module, config, preset, tuple(seeds), data, run)
    started, cpu_started = time.time(), time.process_time()
    try:
        _write_config(job, command)
        run.set_status("running", started=_now(), pid=os.getpid(), host=socket.gethostname())
        per_seed = _run_seeds(job)
        summary = _summarize(job, per_seed)
        verdicts = judge(module.CLAIMS, summary, preset, len(job.seeds), log=run.log)
        run.write_json("claims.json", verdicts)
        for verdict in verdicts:
            run.log(f"claim {verdict['verdict'].upper()}: {verdict['text']}")
        run.set_status("done", finished=_now(), **_timing(started, cpu_started))
        return run.path, "done", None
    except OutputError as error:
        _record_failure(job, error, _timing(started, cpu_started))
        raise
    except Exception as error:  # a failed experiment is recorded, never lost
        return run.path, "failed", _record_failure(job, error, _timing(started, cpu_started))
    finally:  # also on KeyboardInterrupt: a run that stopped must not look alive
        run.stop_heartbeat()


def _write_config(job: _Job, command: str) -> None:
    job.run.write_json(
        "config.json",
        {
            "experiment": job.name,
            "system": job.module.SYSTEM,
            "preset": job.preset,
            "seeds": list(job.seeds),
            "config": dataclasses.asdict(job.config),
            "data": str(job.data) if job.data else None,
            "command": command,
            "argv": sys.argv,
            "device": str(engine.device()),
            "num_processes": engine.accelerator().num_processes,
            "started": _now(),
            "versions": versions(),
        },
    )


def _run_seeds(job: _Job) -> dict[int, dict[str, Any]]:
    """Each seed's metrics (seeded first), saved after every seed."""
    per_seed: dict[int, dict[str, Any]] = {}
    for seed in job.seeds:
        job.run.log(f"{job.name}: seed {seed} ({job.preset} preset)")
        engine.seed_everything(seed)
        seed_started = time.time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            metrics = job.module.run(job.config, job.context(seed))
        for message in dict.fromkeys(str(w.message) for w in caught):
            job.run.log(f"warning: {message}")
        if not isinstance(metrics, dict):
            raise TypeError(f"{job.name}.run must return a dict of metrics, got {type(metrics)}")
        per_seed[seed] = to_jsonable({**metrics, "seconds": time.time() - seed_started})
        job.run.write_json("metrics.json", {"per_seed": per_seed, "summary": {}})
    return per_seed


def _summarize(job: _Job, per_seed: dict[int, dict[str, Any]]) -> dict[str, Estimate]:
    """Every scalar metric's estimate over seeds, plus what the experiment's ``summarize``
    adds (cross-seed figures and metrics); saved in ``metrics.json``."""
    results = [per_seed[seed] for seed in job.seeds]
    summary = summarize_metrics(results)
    summarize = getattr(job.module, "summarize", None)
    if summarize is not None:
        ctx = job.context(job.seeds[0])
        extra = summarize(job.config, MappingProxyType(dict(summary)), results, ctx)
        for key, value in (extra or {}).items():
            summary[key] = value if isinstance(value, Estimate) else mean_interval([value])
    job.run.write_json("metrics.json", {"per_seed": per_seed, "summary": summary})
    return summary


def _record_failure(job: _Job, error: BaseException, timing: dict[str, float]) -> str:
    """Record a failed run as far as the folder can still be written; return the error text.

    On a full disk the log and the claims may not fit: the status is then overwritten in place,
    and failing that, the stale heartbeat shows the run as interrupted.
    """
    text = f"{type(error).__name__}: {error}"
    trace = traceback.format_exc()
    claims = [
        {
            "text": c.text,
            "held": None,
            "verdict": "not judged",
            "numbers": {},
            "presets": list(c.presets),
            "reason": "run failed",
        }
        for c in job.module.CLAIMS
    ]
    status = {"finished": _now(), **timing, "error": text}
    steps = (
        lambda: job.run.log(trace),
        lambda: job.run.write_json("claims.json", claims),
        lambda: job.run.set_status("failed", **status, traceback=trace),
    )
    for step in steps:
        with contextlib.suppress(Exception):
            step()
    if job.run.writer and job.run.state != "failed":
        with contextlib.suppress(Exception):
            job.run.force_status("failed", **status)
    return text


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def heartbeat_stale(status: dict[str, Any], now: float | None = None) -> bool:
    """Whether a running status's heartbeat is older than ``STALE_HEARTBEATS`` intervals."""
    beat, interval = status.get("heartbeat"), status.get("heartbeat_s")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (beat, interval)):
        return False
    age = (time.time() if now is None else now) - float(beat)  # type: ignore[arg-type]
    return age > STALE_HEARTBEATS * max(float(interval), 0.0)  # type: ignore[arg-type]


def run_state(path: Path) -> str:
    """``done``, ``failed``, ``running``, ``interrupted`` (its process is gone: a dead process
    id on this host, or a heartbeat that stopped) or ``unknown``."""
    status = read_json(path / "status.json", {})
    if not isinstance(status, dict):
        return "unknown"
    state = status.get("state", "unknown")
    if state != "running":
        return state if isinstance(state, str) and state in STATES else "unknown"
    if heartbeat_stale(status):
        return "interrupted"
    if status.get("host") == socket.gethostname():
        pid = status.get("pid")
        if isinstance(pid, int) and not isinstance(pid, bool) and not pid_alive(pid):
            return "interrupted"
    return "running"
