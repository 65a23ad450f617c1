"""Run folders: ``runs/<experiment>/<timestamp>/`` written so a crash never leaves half a file.

Layout (docs/lab.md, Run folders): ``config.json``, ``metrics.json``, ``claims.json``, figures
as PNG (listed with captions in ``figures.json``), ``log.txt`` and ``status.json`` (``running``,
``done``, ``failed`` or ``interrupted``). JSON files and figures are written to a temporary file
in the same folder and renamed over the target, which is atomic on POSIX; ``log.txt`` only grows
by whole lines. Files are readable by others as ``open()`` would make them (0644 under the usual
umask). Folder names are claimed with ``mkdir``, so two processes writing to the same ``--out``
never share a folder.

While a run is ``running``, its ``status.json`` carries a heartbeat rewritten every
``heartbeat_s`` seconds; a run whose heartbeat is older than a few of its own intervals (its
process was killed, on this host or another, or its process id was reused) reads as
``interrupted``, as does one stopped by Ctrl-C, which says so itself. A write into the run folder
that fails (a full disk, a read-only mount) raises ``OutputError``: the run is recorded as failed
where that can still be written.

``mltricks.lab.runs`` executes experiments into these folders; the report only reads them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from mltricks.lab.stats import Estimate

STATES = ("running", "done", "failed", "interrupted")
HEARTBEAT_S = 30.0
# a heartbeat older than this many intervals means the run's process is gone (two missed beats
# and some clock difference between hosts are tolerated)
STALE_HEARTBEATS = 3.0
# a heartbeat further ahead of this host's clock than this was not written by a clock in step
# with ours (nor would it age before that time): the run's state is unknown
MAX_CLOCK_AHEAD_S = 86_400.0
MAX_PID = 2**31 - 1  # process ids are a signed 32-bit pid_t


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
    """The JSON in ``path``, or ``default`` when it is missing, not a regular file or not
    readable JSON (bad bytes, nesting too deep for the parser).

    Only a regular file is read: a FIFO would block the reader until someone writes to it, and a
    device may never end. The file is opened without blocking and checked once open, so a file
    swapped for another kind in between is caught too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return default
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return default
            data = handle.read()
        return json.loads(data)
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return default


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Run:
    """One run folder and its writers. Only the main process writes (``accelerate launch``).

    Every write that fails raises ``OutputError``. ``set_status("running", ...)`` starts a
    heartbeat thread that rewrites ``status.json`` every ``heartbeat_s`` seconds until the next
    ``set_status``.
    """

    def __init__(
        self,
        path: Path,
        *,
        writer: bool = True,
        heartbeat_s: float = HEARTBEAT_S,
        folder: Path | None = None,
        log_file: Path | None = None,
    ):
        self.path = path
        # the run folder a reader knows this run by: ``path`` itself, except for the scratch
        # folder in which one seed's task writes its files before they reach ``folder``
        self.folder = path if folder is None else folder
        # where log lines go: ``path/log.txt``, or the run folder's own log when a task's
        # process can reach it (lines appear as they happen; appends of whole lines interleave)
        self.log_file = path / "log.txt" if log_file is None else log_file
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
        with _writing(self.log_file), open(self.log_file, "a", encoding="utf-8") as handle:
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
        self._list_figure(target.name, caption)

    def _list_figure(self, file: str, caption: str) -> None:
        self.figures = [f for f in self.figures if f["file"] != file]
        self.figures.append({"file": file, "caption": caption})
        self.write_json("figures.json", self.figures)

    def add_files(
        self, files: dict[str, bytes], figures: list[dict[str, str]], log_text: str
    ) -> None:
        """Take in what a seed's task wrote elsewhere (its scratch folder): ``files`` by path
        relative to the folder (figures, TensorBoard events), written atomically; ``figures``
        as listed in its ``figures.json``; its ``log.txt`` lines, appended whole."""
        if not self.writer:
            return
        for relative, data in files.items():
            target = self.path / relative
            with _writing(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, data)
        for figure in figures:
            self._list_figure(figure["file"], figure.get("caption", ""))
        if log_text:
            with (
                _writing(self.path / "log.txt"),
                open(self.path / "log.txt", "a", encoding="utf-8") as handle,
            ):
                handle.write(log_text if log_text.endswith("\n") else log_text + "\n")

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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (False for an id no process can
    have: zero or negative ids name process groups, which ``kill`` would probe instead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (NaN, infinities, huge integers, non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _heartbeat(status: dict[str, Any]) -> tuple[float, float] | None:
    """The heartbeat time and interval of a status, None unless both are usable: finite
    numbers, the interval positive (a NaN or an infinite heartbeat would never age)."""
    beat, interval = _finite(status.get("heartbeat")), _finite(status.get("heartbeat_s"))
    if beat is None or interval is None or interval <= 0:
        return None
    return beat, interval


def heartbeat_stale(status: dict[str, Any], now: float | None = None) -> bool:
    """Whether a running status's heartbeat is older than ``STALE_HEARTBEATS`` intervals
    (False when it carries no usable heartbeat: ``run_state`` reads that as unknown)."""
    heartbeat = _heartbeat(status)
    if heartbeat is None:
        return False
    beat, interval = heartbeat
    return (time.time() if now is None else now) - beat > STALE_HEARTBEATS * interval


def run_state(path: Path) -> str:
    """``done``, ``failed``, ``running``, ``interrupted`` (its process is gone: a dead process
    id on this host, or a heartbeat that stopped) or ``unknown``.

    A running status must prove it is alive: one whose heartbeat or interval is there but not a
    finite number (NaN, infinite, text: never written by ``Run``), or whose heartbeat lies more
    than ``MAX_CLOCK_AHEAD_S`` in the future, is ``unknown``, since it could never age into
    interrupted; so is a process id that no process can have. A status without any heartbeat
    (written before heartbeats existed) is judged by its process id alone.
    """
    status = read_json(path / "status.json", {})
    if not isinstance(status, dict):
        return "unknown"
    state = status.get("state", "unknown")
    if state != "running":
        return state if isinstance(state, str) and state in STATES else "unknown"
    if "heartbeat" in status or "heartbeat_s" in status:
        heartbeat = _heartbeat(status)
        if heartbeat is None or heartbeat[0] - time.time() > MAX_CLOCK_AHEAD_S:
            return "unknown"
        if heartbeat_stale(status):
            return "interrupted"
    pid = status.get("pid")
    if "pid" in status and not (
        isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= MAX_PID
    ):
        return "unknown"
    if status.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return "interrupted"
    return "running"
