"""The report: ``DIR/index.html`` built from run folders only (never from live objects).

One page, readable offline and on a narrow screen: a table of the eighteen systems
(docs/systems/) with their claims, then one section per experiment (its latest run) with status,
claims, metrics with intervals, figures, configuration, duration and the command that reruns it. Every text shown is
escaped, so config values and data-derived strings cannot inject markup (in the HTML page and in
``--markdown``).

Run folders are read defensively: a folder whose files are not regular files (a FIFO is never
opened), not JSON, nested deeper than ``MAX_DEPTH`` or JSON of the wrong shape is listed as
unreadable with the reason, and the others render; a figure path that leaves its run folder is
refused. In ``--markdown``, text is escaped so that nothing from a run folder becomes a link, an
image, emphasis or code. The page carries a generator tag, and ``write_report`` never overwrites
an ``index.html`` without it.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mltricks.lab import registry
from mltricks.lab.run_folder import atomic_write_bytes, read_json, run_state

__all__ = ["ReportError", "RunRecord", "collect_runs", "markdown_table", "render", "write_report"]

VERDICTS = {
    True: ("held", "held"),
    False: ("not held", "not-held"),
    None: ("not judged", "not-judged"),
}
# verdict label (claims.json "verdict") -> CSS class
VERDICT_CLASSES = {
    "held": "held",
    "not held": "not-held",
    "not judged": "not-judged",
    "not applicable": "not-judged",
    "defect": "defect",
}
GENERATOR = '<meta name="generator" content="mltricks report">'
# run files nest a few levels (metrics.json: per_seed -> seed -> metric -> list); deeper JSON is
# not from mltricks run, and would overflow the recursion of whatever prints it
MAX_DEPTH = 64


class ReportError(ValueError):
    """The report cannot be written (no runs, a foreign ``index.html``): one line for the CLI."""


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


def _is_number(value: Any) -> bool:
    """A JSON number the page can print: not a boolean, and a float (integers past 1e308, which
    JSON allows, cannot be one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


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
        if value is not None and not _is_number(value):
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
        if status.get(key) is not None and not _is_number(status.get(key)):
            raise Malformed(f"status.json {key}: expected a number, got {_kind(status.get(key))}")
    for key in ("error", "tracking_error"):
        if key in status:
            _need(status[key], (str, type(None)), f"status.json {key}")
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


def _order(experiments: list[str]) -> list[str]:
    known = registry.names()
    return sorted(experiments, key=lambda e: (known.index(e) if e in known else len(known), e))


def fmt(value: Any) -> str:
    """A number to 4 significant digits; other values as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        try:
            return f"{value:.4g}"
        except OverflowError:  # an integer past float's range (JSON allows it)
            return f"{Decimal(value):.4g}"
    return str(value)


def fmt_estimate(estimate: dict[str, Any]) -> str:
    """``mean [low, high]`` (or just the mean when there is no interval)."""
    mean = fmt(estimate.get("mean"))
    if estimate.get("low") is None or estimate.get("high") is None:
        return mean
    return f"{mean} [{fmt(estimate['low'])}, {fmt(estimate['high'])}]"


def claim_numbers(claim: dict[str, Any]) -> str:
    """The numbers a claim was judged on, as one line of text."""
    parts = [
        f"{name} = {fmt_estimate(est)}"
        for name, est in (claim.get("numbers") or {}).items()
        if isinstance(est, dict)
    ]
    if claim.get("reason"):
        parts.append(str(claim["reason"]))
    return "; ".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# what starts Markdown (GitHub's flavour) inside a table cell: links and images ([x](u), ![p](u)),
# code, emphasis, strikethrough, math, and a bare URL's "://" (GitHub links those by itself)
_MARKDOWN_SYNTAX = re.compile(r"[\\`*\[\]~$|]|:(?=//)|(?<![^\W_])_|_(?![^\W_])")


def _md(value: Any) -> str:
    """A Markdown table cell that shows ``value`` as text, as the HTML page does: HTML is
    escaped (``<``, ``&``), Markdown syntax is backslash-escaped (so ``[x](javascript:...)`` and
    ``![p](https://...)`` stay text), and pipes and line breaks cannot break the row. An
    underscore inside a word (``train_loss``) is left as it is: it never starts emphasis."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
    text = _MARKDOWN_SYNTAX.sub(lambda match: "\\" + match.group(), text)
    return text.replace("\r", " ").replace("\n", " ")


def _md_code(name: str) -> str:
    """``name`` as a code span in a table cell (backticks and line breaks cannot end it early)."""
    text = name.replace("`", "'").replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return f"`{text}`" if text.strip() else ""


def verdict_label(claim: dict[str, Any]) -> str:
    """What a reader sees for a claim: held, not held, not judged, not applicable, defect."""
    label = claim.get("verdict")
    return label if label in VERDICT_CLASSES else VERDICTS[claim.get("held")][0]


def _system_rows(
    latest: dict[str, RunRecord],
) -> list[tuple[str, str, RunRecord | None, dict | None]]:
    """(system, experiment, run, claim) rows: every system, every experiment, every claim."""
    experiments_by_system: dict[str, list[str]] = {s: [] for s in registry.SYSTEMS}
    for name in registry.names():
        try:
            system = registry.load(name).SYSTEM
        except Exception:
            continue
        experiments_by_system.setdefault(system, []).append(name)
    rows: list[tuple[str, str, RunRecord | None, dict | None]] = []
    for system, experiments in experiments_by_system.items():
        if not experiments:
            rows.append((system, "", None, None))
        for experiment in experiments:
            record = latest.get(experiment)
            claims = record.claims if record and record.claims else [None]
            rows += [(system, experiment, record, claim) for claim in claims]
    return rows


def _run_label(config: dict[str, Any]) -> str:
    """The preset of a run, and the folder of its ``--data`` set when it read one."""
    label = str(config.get("preset", "?"))
    data = config.get("data")
    return f"{label}, --data {Path(str(data)).name}" if data else label


def _timing_text(status: dict[str, Any]) -> str:
    """``"3.1 min (CPU 5.0 min, load 2.1)"``: wall time, CPU time and the machine's load."""
    wall, cpu, load = (status.get(k) for k in ("duration_s", "cpu_s", "load_average"))
    if wall is None:
        return ""
    details = ", ".join(
        part
        for part in (
            f"CPU {float(cpu) / 60:.1f} min" if cpu is not None else "",
            f"load {float(load):.1f}" if load is not None else "",
        )
        if part
    )
    return f"{float(wall) / 60:.1f} min" + (f" ({details})" if details else "")


def markdown_table(root: Path) -> str:
    """The results table of all systems as Markdown, for the README.

    Next to each system's claims: what the earlier implementation reported
    (``registry.EARLIER_RESULTS``) and the run's wall time, CPU time and load average.
    """
    latest = _latest(root)
    lines = [
        "| system | experiment | claim | verdict | numbers (mean [95% interval]) "
        "| earlier implementation | run time |",
        "|---|---|---|---|---|---|---|",
    ]
    shown_system: set[str] = set()
    shown_run: set[str] = set()
    for system, experiment, record, claim in _system_rows(latest):
        if record is None:
            verdict, text, numbers = "no run", "", ""
        elif claim is None:
            verdict, text, numbers = record.state, "", record.problem or ""
        else:
            verdict = verdict_label(claim)
            if record.state != "done":
                verdict = record.state
            text, numbers = str(claim.get("text", "")), claim_numbers(claim)
        preset = f" ({_run_label(record.config)})" if record and "preset" in record.config else ""
        earlier = "" if system in shown_system else registry.EARLIER_RESULTS.get(system, "")
        shown_system.add(system)
        duration = ""
        if record is not None and experiment not in shown_run:
            duration = _timing_text(record.status)
            shown_run.add(experiment)
        cells = [
            text,
            verdict,
            numbers,
            earlier,
            duration,
        ]
        experiment_cell = _md_code(experiment) + _md(preset)
        lines.append("| " + " | ".join([_md(system), experiment_cell, *map(_md, cells)]) + " |")
    wall = sum(float(r.status.get("duration_s") or 0) for r in latest.values())
    cpu = sum(float(r.status.get("cpu_s") or 0) for r in latest.values())
    lines.append("")
    lines.append(
        f"Total run time of these {len(latest)} runs: {wall / 60:.1f} min wall, "
        f"{cpu / 60:.1f} min CPU."
    )
    return "\n".join(lines)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem;line-height:1.45;color:#1d2330}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:2px solid #dde;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #d4d8e0;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f1f3f7}.wrap{overflow-x:auto}
.held{background:#dff3e2;color:#145c24;font-weight:600}.not-held{background:#fbe0e0;color:#8a1414;font-weight:600}
.not-judged{background:#eef0f4;color:#4c5466}.defect{background:#fff1d6;color:#7a4a00;font-weight:600}
.state-failed,.state-interrupted,.state-unreadable{color:#8a1414;font-weight:700}
.state-done{color:#145c24;font-weight:700}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #e2e5ea}
figcaption{font-size:.85rem;color:#4c5466}code,pre{background:#f4f5f8;padding:.1rem .3rem;
border-radius:3px;white-space:pre-wrap;word-break:break-word}
details{margin:.6rem 0}summary{cursor:pointer;font-weight:600}
@media (max-width:640px){body{padding:.5rem}th,td{padding:.2rem .3rem;font-size:.8rem}}
"""


def _verdict_cell(claim: dict[str, Any] | None, state: str | None) -> str:
    if claim is None:
        return "<td></td>"
    label = verdict_label(claim)
    css = VERDICT_CLASSES[label]
    if state not in (None, "done"):
        label, css = state, "not-judged"
    return f'<td class="{css}">{_e(label)}</td>'


def _results(record: RunRecord) -> list[str]:
    """A run's claims table and metrics table (HTML lines)."""
    parts = []
    if record.claims:
        parts.append(
            '<div class="wrap"><table><tr><th>claim</th><th>verdict</th><th>numbers</th></tr>'
        )
        for claim in record.claims:
            parts.append(
                f"<tr><td>{_e(claim.get('text', ''))}</td>{_verdict_cell(claim, record.state)}"
                f"<td>{_e(claim_numbers(claim))}</td></tr>"
            )
        parts.append("</table></div>")
    summary = record.metrics.get("summary") or {}
    if summary:
        parts.append(
            "<details open><summary>Metrics (mean and 95% interval over seeds)</summary>"
            '<div class="wrap"><table><tr><th>metric</th><th>mean [95% interval]</th><th>n</th></tr>'
        )
        for metric, estimate in summary.items():
            parts.append(
                f"<tr><td>{_e(metric)}</td><td>{_e(fmt_estimate(estimate))}</td>"
                f"<td>{_e(estimate.get('n'))}</td></tr>"
            )
        parts.append("</table></div></details>")
    return parts


def _section(record: RunRecord, older: list[RunRecord], root: Path) -> str:
    name = record.experiment
    cfg = record.config
    duration = _timing_text(record.status) or "unknown"
    parts = [f'<section id="{_e(name)}"><h2>{_e(name)}</h2>']
    parts.append(
        f"<p>{_e(cfg.get('system', ''))}. State: "
        f'<span class="state-{_e(record.state)}">{_e(record.state)}</span>; preset '
        f"<b>{_e(cfg.get('preset'))}</b>, seeds {_e(cfg.get('seeds'))}, "
        f"duration {_e(duration)}, "
        f"device {_e(cfg.get('device'))}, started {_e(record.started)}.</p>"
    )
    parts.append(f"<p>Rerun: <code>{_e(cfg.get('command', ''))}</code></p>")
    if record.problem:
        parts.append(
            f'<p class="state-failed">Unreadable run folder {_e(record.path.name)}: '
            f"{_e(record.problem)}</p>"
        )
    if record.state in ("failed", "interrupted"):
        error = record.status.get("error") or "the process ended before the run finished"
        parts.append(f'<p class="state-failed">Error: {_e(error)}</p>')
    if record.status.get("tracking_error"):  # the results are whole; the tracker has less
        parts.append(f"<p>Tracking: {_e(record.status['tracking_error'])}</p>")
    parts += _results(record)
    for figure in record.figures:
        src = quote(str((record.path / figure["file"]).relative_to(root)))
        parts.append(
            f'<figure><img src="{_e(src)}" alt="{_e(figure.get("caption") or figure["file"])}">'
            f"<figcaption>{_e(figure.get('caption') or figure['file'])}</figcaption></figure>"
        )
    config_values = cfg.get("config") or {}
    parts.append('<details><summary>Configuration</summary><div class="wrap"><table>')
    for key, value in config_values.items():
        parts.append(f"<tr><td>{_e(key)}</td><td>{_e(json.dumps(value))}</td></tr>")
    parts.append("</table></div></details>")
    if older:
        parts.append("<details><summary>Earlier runs</summary><ul>")
        for other in older:
            parts.append(
                f"<li>{_e(other.path.name)}: {_e(other.state)}, preset "
                f"{_e(other.config.get('preset'))}</li>"
            )
        parts.append("</ul></details>")
    parts.append("</section>")
    return "\n".join(parts)


def render(root: Path) -> str:
    """The report page for the run folders under ``root``."""
    runs = collect_runs(root)
    latest = {name: records[0] for name, records in runs.items()}
    body = [
        "<h1>mltricks: reproduction report</h1>",
        "<p>Each row is a claim of an experiment's latest run. Claims are judged on the preset "
        "they name (usually <b>full</b>); other presets show them as not judged.</p>",
        '<div class="wrap"><table id="claims"><tr><th>system</th><th>experiment</th>'
        "<th>claim</th><th>verdict</th><th>numbers</th><th>earlier implementation</th></tr>",
    ]
    shown_system: set[str] = set()
    for system, experiment, record, claim in _system_rows(latest):
        earlier = "" if system in shown_system else registry.EARLIER_RESULTS.get(system, "")
        shown_system.add(system)
        link = (
            f'<a href="#{_e(experiment)}">{_e(experiment)}</a>' if record else _e(experiment or "")
        )
        preset = " (no run)" if record is None else f" ({_e(_run_label(record.config))})"
        body.append(
            f'<tr data-experiment="{_e(experiment)}"><td>{_e(system)}</td><td>{link}{preset}</td>'
            f"<td>{_e(claim.get('text', '') if claim else '')}</td>"
            f"{_verdict_cell(claim, record.state if record else None)}"
            f"<td>{_e(claim_numbers(claim) if claim else '')}</td><td>{_e(earlier)}</td></tr>"
        )
    body.append("</table></div>")
    for name in _order(list(latest)):
        body.append(_section(latest[name], runs[name][1:], root))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR}'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mltricks report</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _latest(root: Path) -> dict[str, RunRecord]:
    """Each experiment's latest run; ``ReportError`` when ``root`` holds none."""
    latest = {name: records[0] for name, records in collect_runs(Path(root)).items()}
    if not latest:
        raise ReportError(
            f"no runs in {str(root)!r} (expected <experiment>/<run>/ folders from mltricks run)"
        )
    return latest


def written_by_report(path: Path) -> bool:
    """Whether ``path`` is a page this module wrote (it carries the generator tag)."""
    try:  # without blocking, and only a regular file (never a FIFO put in its place)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            regular = stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
            return regular and GENERATOR.encode() in handle.read(4096)
    except (OSError, ValueError):
        return False


def write_report(root: Path) -> Path:
    """Write ``root/index.html`` atomically and return its path.

    Raises:
        ReportError: ``root`` holds no runs, or its ``index.html`` was not written by this
            function (it is left as it is).
    """
    root = Path(root)
    _latest(root)
    target = root / "index.html"
    if (target.exists() or target.is_symlink()) and not (
        target.is_file() and not target.is_symlink() and written_by_report(target)
    ):
        raise ReportError(
            f"{str(target)!r} exists and was not written by mltricks report; "
            "it is left as it is (move it, or report into another folder)"
        )
    atomic_write_bytes(target, render(root).encode("utf-8"))
    return target
