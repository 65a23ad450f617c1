"""Run folders: ``runs/<experiment>/<timestamp>/`` written so a crash never leaves half a file.

Layout (DESIGN.md section 3): ``config.json``, ``metrics.json``, ``claims.json``, figures as PNG
(listed with captions in ``figures.json``), ``log.txt`` and ``status.json`` (``running``,
``done`` or ``failed``). JSON files and figures are written to a temporary file in the same
folder and renamed over the target, which is atomic on POSIX; ``log.txt`` only grows by whole
lines. Folder names are claimed with ``mkdir``, so two processes writing to the same ``--out``
never share a folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from smallml.lab import engine
from smallml.lab.experiment import Claim, Preset, RunContext
from smallml.lab.stats import Estimate, mean_interval, proportion_interval

STATES = ("running", "done", "failed")


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
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
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
    """One run folder and its writers. Only the main process writes (``accelerate launch``)."""

    def __init__(self, path: Path, *, writer: bool = True) -> None:
        self.path = path
        self.writer = writer
        self.figures: list[dict[str, str]] = []

    @classmethod
    def create(cls, root: Path, experiment: str) -> Run:
        """Claim a new folder ``root/<experiment>/<UTC timestamp>[-k]``."""
        parent = Path(root) / experiment
        parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        for attempt in range(1, 1000):
            path = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise RuntimeError(f"could not create a run folder under {parent}")

    def write_json(self, name: str, value: Any) -> None:
        if self.writer:
            atomic_write_json(self.path / name, value)

    def log(self, message: str) -> None:
        if not self.writer:
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        lines = "".join(f"[{stamp}] {line}\n" for line in str(message).splitlines() or [""])
        with open(self.path / "log.txt", "a", encoding="utf-8") as handle:
            handle.write(lines)

    def savefig(self, figure: Any, name: str, caption: str = "") -> None:
        import matplotlib.pyplot as plt

        if not self.writer:
            plt.close(figure)
            return
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "figure"
        target = self.path / f"{safe}.png"
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{safe}.", suffix=".png")
        os.close(fd)
        try:
            figure.savefig(tmp, dpi=110, bbox_inches="tight")
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
            plt.close(figure)
        self.figures = [f for f in self.figures if f["file"] != target.name]
        self.figures.append({"file": target.name, "caption": caption})
        self.write_json("figures.json", self.figures)

    def set_status(self, state: str, **info: Any) -> None:
        assert state in STATES
        self.write_json("status.json", {"state": state, **info})


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import accelerate
    import matplotlib
    import sklearn
    import torchvision

    import smallml

    return {
        "python": platform.python_version(),
        "smallml": smallml.__version__,
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


def judge(
    claims: Sequence[Claim], summary: dict[str, Estimate], preset: str, num_seeds: int
) -> list[dict[str, Any]]:
    """Each claim's verdict: held True/False, or None when this preset or seed count does not
    judge it; with the numbers it rests on."""
    verdicts = []
    for claim in claims:
        numbers = {m: summary[m].as_dict() for m in claim.metrics if m in summary}
        verdict: dict[str, Any] = {
            "text": claim.text,
            "held": None,
            "numbers": numbers,
            "presets": list(claim.presets),
        }
        if preset not in claim.presets:
            verdict["reason"] = f"judged on the {' / '.join(claim.presets)} preset only"
        elif num_seeds < claim.min_seeds:
            verdict["reason"] = f"needs at least {claim.min_seeds} seeds, got {num_seeds}"
        else:
            try:
                verdict["held"] = bool(claim.holds(summary))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
                verdict["reason"] = f"could not be judged: {type(error).__name__}: {error}"
        verdicts.append(verdict)
    return verdicts


def resolve_config(module: ModuleType, preset: str, overrides: dict[str, Any]) -> Any:
    """The module's ``Config`` with the preset's values, then the user's overrides."""
    presets: dict[str, Preset] = module.PRESETS
    return dataclasses.replace(module.Config(), **{**presets[preset].config, **overrides})


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
    """
    is_writer = engine.is_main_process()
    run = Run.create(out, name) if is_writer else Run(Path(out) / name / "worker", writer=False)
    started, cpu_started = time.time(), time.process_time()
    device = engine.device()
    run.write_json(
        "config.json",
        {
            "experiment": name,
            "system": module.SYSTEM,
            "preset": preset,
            "seeds": list(seeds),
            "config": dataclasses.asdict(config),
            "data": str(data) if data else None,
            "command": command,
            "argv": sys.argv,
            "device": str(device),
            "num_processes": engine.accelerator().num_processes,
            "started": _now(),
            "versions": versions(),
        },
    )
    run.set_status("running", started=_now(), pid=os.getpid(), host=socket.gethostname())
    per_seed: dict[int, dict[str, Any]] = {}
    try:
        seed_tuple = tuple(seeds)
        for seed in seed_tuple:
            run.log(f"{name}: seed {seed} ({preset} preset)")
            engine.seed_everything(seed)
            ctx = RunContext(
                seed=seed, seeds=seed_tuple, preset=preset, device=device, data=data, run=run
            )
            seed_started = time.time()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                metrics = module.run(config, ctx)
            for message in dict.fromkeys(str(w.message) for w in caught):
                run.log(f"warning: {message}")
            if not isinstance(metrics, dict):
                raise TypeError(f"{name}.run must return a dict of metrics, got {type(metrics)}")
            metrics = {**metrics, "seconds": time.time() - seed_started}
            per_seed[seed] = to_jsonable(metrics)
            run.write_json("metrics.json", {"per_seed": per_seed, "summary": {}})
        summary = summarize_metrics(list(per_seed.values()))
        if hasattr(module, "summarize"):
            ctx = RunContext(
                seed=seed_tuple[0],
                seeds=seed_tuple,
                preset=preset,
                device=device,
                data=data,
                run=run,
            )
            extra = module.summarize(config, [per_seed[s] for s in seed_tuple], ctx) or {}
            for key, value in extra.items():
                summary[key] = value if isinstance(value, Estimate) else mean_interval([value])
        run.write_json("metrics.json", {"per_seed": per_seed, "summary": summary})
        verdicts = judge(module.CLAIMS, summary, preset, len(seed_tuple))
        run.write_json("claims.json", verdicts)
        for verdict in verdicts:
            state = {True: "HELD", False: "NOT HELD", None: "not judged"}[verdict["held"]]
            run.log(f"claim {state}: {verdict['text']}")
        run.set_status("done", finished=_now(), **_timing(started, cpu_started))
        return run.path, "done", None
    except Exception as error:  # a failed experiment is recorded, never lost
        text = f"{type(error).__name__}: {error}"
        run.log(traceback.format_exc())
        run.write_json(
            "claims.json",
            [
                {
                    "text": c.text,
                    "held": None,
                    "numbers": {},
                    "presets": list(c.presets),
                    "reason": "run failed",
                }
                for c in module.CLAIMS
            ],
        )
        run.set_status(
            "failed",
            finished=_now(),
            **_timing(started, cpu_started),
            error=text,
            traceback=traceback.format_exc(),
        )
        return run.path, "failed", text


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(path: Path) -> str:
    """``done``, ``failed``, ``running``, ``interrupted`` (its process is gone) or ``unknown``."""
    status = read_json(path / "status.json", {}) or {}
    state = status.get("state", "unknown")
    if state == "running" and status.get("host") == socket.gethostname():
        pid = status.get("pid")
        if isinstance(pid, int) and not pid_alive(pid):
            return "interrupted"
    return state if state in (*STATES, "interrupted") else "unknown"
