"""Reading run folders for the report: every file checked before anything of it is shown.

A folder whose files are not regular files (a FIFO is never opened), not JSON, nested deeper than
``MAX_DEPTH`` or JSON of the wrong shape becomes a ``RunRecord`` with ``problem`` set and state
``unreadable``; the report lists it with the reason and renders the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltricks._utils.checks import is_json_number as is_number
from mltricks.lab.run_folder import read_json, run_state

__all__ = [
    "MAX_DEPTH",
    "VERDICT_CLASSES",
    "Malformed",
    "RunRecord",
    "collect_runs",
    "is_number",
    "read_run",
]

# verdict label (claims.json "verdict") -> CSS class
VERDICT_CLASSES = {
    "held": "held",
    "not held": "not-held",
    "not judged": "not-judged",
    "not applicable": "not-judged",
    "defect": "defect",
}
# run files nest a few levels (metrics.json: per_seed -> seed -> metric -> list); deeper JSON is
# not from mltricks run, and would overflow the recursion of whatever prints it
MAX_DEPTH = 64


class Malformed(ValueError):
    """A run file holds valid JSON of the wrong shape; the message says which and why."""


@dataclass
class RunRecord:
    """What one run folder holds, read from its files."""

    path: Path
    experiment: str
    state: str
    config: dict[str, Any]
    status: dict[str, Any]
    metrics: dict[str, Any]
    claims: list[dict[str, Any]]
    figures: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None

    @property
    def started(self) -> str:
        return str(self.config.get("started") or self.status.get("started") or self.path.name)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _need(value: Any, kinds: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kinds):
        names = " or ".join(
            "null" if k is type(None) else k.__name__
            for k in (kinds if isinstance(kinds, tuple) else (kinds,))
        )
        raise Malformed(f"{where}: expected {names}, got {_kind(value)}")
    return value


_UNREADABLE = object()


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` levels (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack += [(v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return False


def _load(run_dir: Path, name: str, default: Any) -> Any:
    """A run file's JSON, ``default`` when the file is missing."""
    path = run_dir / name
    try:
        if not (path.exists() or path.is_symlink()):
            return default
        if not path.is_file():
            raise Malformed(f"{name}: not a regular file")
    except OSError as error:
        raise Malformed(f"{name}: cannot be read ({error.strerror or error})") from None
    value = read_json(path, _UNREADABLE)
    if value is _UNREADABLE:
        raise Malformed(f"{name}: not readable JSON")
    if _too_deep(value):
        raise Malformed(f"{name}: nested deeper than {MAX_DEPTH} levels")
    return value


def _check_estimate(estimate: Any, where: str) -> None:
    _need(estimate, dict, where)
    for key in ("mean", "low", "high", "std"):
        value = estimate.get(key)
        if value is not None and not is_number(value):
            raise Malformed(f"{where}.{key}: expected a number or null, got {_kind(value)}")


def _read_config(run_dir: Path) -> dict[str, Any]:
    config = _need(_load(run_dir, "config.json", {}), dict, "config.json")
    for key, kinds in (("experiment", str), ("preset", str), ("command", str), ("config", dict)):
        if key in config:
            _need(config[key], kinds, f"config.json {key}")
    return config


def _read_status(run_dir: Path) -> dict[str, Any]:
    status = _need(_load(run_dir, "status.json", {}) or {}, dict, "status.json")
    for key in ("duration_s", "cpu_s", "load_average"):
        if status.get(key) is not None and not is_number(status.get(key)):
            raise Malformed(f"status.json {key}: expected a number, got {_kind(status.get(key))}")
    for key in ("error", "tracking_error"):
        if key in status:
            _need(status[key], (str, type(None)), f"status.json {key}")
    for index, warning in enumerate(
        _need(status.get("warnings") or [], list, "status.json warnings")
    ):
        _need(warning, str, f"status.json warnings [{index}]")
    return status


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    metrics = _need(_load(run_dir, "metrics.json", {}) or {}, dict, "metrics.json")
    _need(metrics.get("per_seed", {}), dict, "metrics.json per_seed")
    summary = _need(metrics.get("summary", {}) or {}, dict, "metrics.json summary")
    for name, estimate in summary.items():
        _check_estimate(estimate, f"metrics.json summary.{name}")
    return metrics


def _read_claims(run_dir: Path) -> list[dict[str, Any]]:
    claims = _need(_load(run_dir, "claims.json", []) or [], list, "claims.json")
    for index, claim in enumerate(claims):
        where = f"claims.json [{index}]"
        _need(claim, dict, where)
        _need(claim.get("text", ""), str, f"{where}.text")
        _need(claim.get("held"), (bool, type(None)), f"{where}.held")
        _need(claim.get("reason", ""), str, f"{where}.reason")
        _need(claim.get("verdict"), (str, type(None)), f"{where}.verdict")
        if claim.get("verdict") is not None and claim["verdict"] not in VERDICT_CLASSES:
            raise Malformed(f"{where}.verdict: unknown verdict {str(claim['verdict'])[:40]!r}")
        for name, estimate in _need(claim.get("numbers") or {}, dict, f"{where}.numbers").items():
            _check_estimate(estimate, f"{where}.numbers.{name}")
    return claims


def _read_figures(run_dir: Path) -> list[dict[str, str]]:
    """The listed figures whose PNG exists; a path out of the run folder is refused."""
    figures = _need(_load(run_dir, "figures.json", []) or [], list, "figures.json")
    kept = []
    for index, figure in enumerate(figures):
        where = f"figures.json [{index}]"
        name = _need(_need(figure, dict, where).get("file"), str, f"{where}.file")
        _need(figure.get("caption", ""), str, f"{where}.caption")
        # a NUL byte cannot be in a file name (the system calls refuse it)
        plain = "\x00" not in name and Path(name).name == name and not name.startswith(".")
        try:
            if not plain or (run_dir / name).resolve().parent != run_dir.resolve():
                raise Malformed(f"{where}.file: {name[:60]!r} is not a file of the run folder")
            if (run_dir / name).is_file():
                kept.append(figure)
        except OSError as error:  # a name too long for the file system, ...
            raise Malformed(f"{where}.file: {name[:60]!r}: {error.strerror or error}") from None
    return kept


def read_run(run_dir: Path) -> RunRecord:
    """One run folder as a record; a malformed file gives a record with ``problem`` set and
    nothing else from the folder's files."""
    try:
        config = _read_config(run_dir)
        record = RunRecord(
            path=run_dir,
            experiment=str(config.get("experiment", run_dir.parent.name)),
            state=run_state(run_dir),
            config=config,
            status=_read_status(run_dir),
            metrics=_read_metrics(run_dir),
            claims=_read_claims(run_dir),
            figures=_read_figures(run_dir),
        )
    except Malformed as error:
        return RunRecord(
            path=run_dir,
            experiment=run_dir.parent.name,
            state="unreadable",
            config={},
            status={},
            metrics={},
            claims=[],
            problem=str(error),
        )
    return record


def collect_runs(root: Path) -> dict[str, list[RunRecord]]:
    """Every run under ``root/<experiment>/<run>/``, newest first per experiment.

    A folder is a run when it has a ``config.json`` or a ``status.json`` (of any kind: one that
    is not a regular file makes the run unreadable, not invisible).
    """
    found: dict[str, list[RunRecord]] = {}
    for experiment_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for run_dir in sorted((p for p in experiment_dir.iterdir() if p.is_dir()), reverse=True):
            if not any(os.path.lexists(run_dir / name) for name in ("config.json", "status.json")):
                continue
            record = read_run(run_dir)
            found.setdefault(record.experiment, []).append(record)
    for records in found.values():
        records.sort(key=lambda r: r.started, reverse=True)
    return found
