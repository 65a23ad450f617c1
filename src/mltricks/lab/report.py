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
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mltricks.lab import registry
from mltricks.lab.published import data_set_of, load, published_claim
from mltricks.lab.run_folder import atomic_write_bytes
from mltricks.lab.run_records import VERDICT_CLASSES, RunRecord, collect_runs, is_number
from mltricks.lab.stats import MIN_SEEDS_FOR_INTERVAL

__all__ = ["ReportError", "RunRecord", "collect_runs", "markdown_table", "render", "write_report"]

VERDICTS = {
    True: ("held", "held"),
    False: ("not held", "not-held"),
    None: ("not judged", "not-judged"),
}
GENERATOR = '<meta name="generator" content="mltricks report">'


class ReportError(ValueError):
    """The report cannot be written (no runs, a foreign ``index.html``): one line for the CLI."""


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


# what the numbers columns show, said in their headings
NUMBERS_HEADING = (
    f"numbers (mean [95% interval] over seeds; the values with fewer than "
    f"{MIN_SEEDS_FOR_INTERVAL} seeds; * interval cut to the metric's range)"
)


def fmt_estimate(estimate: dict[str, Any]) -> str:
    """``mean [low, high]``; with fewer than ``MIN_SEEDS_FOR_INTERVAL`` seeds the values
    themselves (``values: 0.91, 0.93``), and ``*`` after an interval cut to the metric's range
    (an accuracy's [0, 1])."""
    mean = fmt(estimate.get("mean"))
    values = estimate.get("values")
    n = estimate.get("n")
    if isinstance(values, list) and isinstance(n, int) and n < MIN_SEEDS_FOR_INTERVAL:
        shown = ", ".join(fmt(v) for v in values if is_number(v))
        return f"{shown} ({n} seed{'s' if n != 1 else ''})" if n > 1 else shown
    if estimate.get("low") is None or estimate.get("high") is None:
        return mean
    mark = "*" if estimate.get("clipped") else ""
    return f"{mean} [{fmt(estimate['low'])}, {fmt(estimate['high'])}]{mark}"


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
        f"| system | experiment | claim | verdict | {NUMBERS_HEADING} "
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
            "<details open><summary>Metrics over seeds</summary>"
            '<div class="wrap"><table><tr><th>metric</th>'
            f"<th>{_e(NUMBERS_HEADING.removeprefix('numbers '))}</th><th>n</th></tr>"
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
    for warning in record.status.get("warnings") or []:  # a network below its baseline
        parts.append(f'<p class="state-failed">Warning: {_e(warning)}</p>')
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


def _row_label(record: RunRecord | None, claim: dict[str, Any] | None) -> str:
    """A claims-table row's verdict as counted: the claim's, the run's state when it did not
    finish, or ``no run``."""
    if record is None:
        return "no run"
    if record.state != "done":
        return record.state
    return verdict_label(claim) if claim is not None else "no claims"


def _counts(labels: list[str]) -> str:
    order = ("held", "not held", "not judged", "not applicable", "defect")
    counted = {label: labels.count(label) for label in dict.fromkeys([*order, *labels])}
    return ", ".join(f"{n} {label}" for label, n in counted.items() if n)


def _published_cell(
    snapshot: dict[str, Any], record: RunRecord | None, claim: dict[str, Any] | None
) -> tuple[str, str | None]:
    """The published full run's verdict of this claim (text, label), when there is one."""
    if record is None or claim is None:
        return "", None
    found = published_claim(
        snapshot, data_set_of(record.config), record.experiment, str(claim.get("text", ""))
    )
    if found is None:
        return "", None
    run, published = found
    label = str(published.get("verdict", "not judged"))
    when = str(run.get("finished") or "")[:10]
    return f"{label} (results/{run.get('run', '')}, {when}: {run.get('command', '')})", label


def render(root: Path) -> str:
    """The report page for the run folders under ``root``."""
    runs = collect_runs(root)
    latest = {name: records[0] for name, records in runs.items()}
    snapshot = load()
    rows = _system_rows(latest)
    by_system: dict[str, list[str]] = {}
    published_by_system: dict[str, list[str]] = {}
    table = []
    shown_system: set[str] = set()
    for system, experiment, record, claim in rows:
        label = _row_label(record, claim)
        by_system.setdefault(system, []).append(label)
        published, published_label = _published_cell(snapshot, record, claim)
        if published_label:
            published_by_system.setdefault(system, []).append(published_label)
        earlier = "" if system in shown_system else registry.EARLIER_RESULTS.get(system, "")
        shown_system.add(system)
        link = (
            f'<a href="#{_e(experiment)}">{_e(experiment)}</a>' if record else _e(experiment or "")
        )
        preset = " (no run)" if record is None else f" ({_e(_run_label(record.config))})"
        table.append(
            f'<tr data-experiment="{_e(experiment)}"><td>{_e(system)}</td><td>{link}{preset}</td>'
            f"<td>{_e(claim.get('text', '') if claim else '')}</td>"
            f"{_verdict_cell(claim, record.state if record else None)}"
            f"<td>{_e(claim_numbers(claim) if claim else '')}</td><td>{_e(published)}</td>"
            f"<td>{_e(earlier)}</td></tr>"
        )
    labels = [label for system_labels in by_system.values() for label in system_labels]
    judged = [s for s, ls in by_system.items() if any(x in ("held", "not held") for x in ls)]
    body = [
        "<h1>mltricks: reproduction report</h1>",
        f'<p id="counts">This report\'s runs: <b>{_e(_counts(labels))}</b> '
        f"({len(labels)} claims; {len(judged)} of {len(by_system)} systems with a verdict).</p>",
        '<ul id="systems">',
    ]
    for system, system_labels in by_system.items():
        published_labels = published_by_system.get(system)
        tail = f"; published full run: {_counts(published_labels)}" if published_labels else ""
        body.append(f"<li><b>{_e(system)}</b>: {_e(_counts(system_labels))}{_e(tail)}</li>")
    body += [
        "</ul>",
        "<p>Each row is a claim of an experiment's latest run, judged on the presets it names; "
        "on other presets it is not judged, and the published full run's verdict (a snapshot in "
        "the repository's results/, with its command) stands beside it, never as this run's "
        "verdict.</p>",
        '<div class="wrap"><table id="claims"><tr><th>system</th><th>experiment</th>'
        f"<th>claim</th><th>verdict</th><th>{_e(NUMBERS_HEADING)}</th>"
        "<th>published full run</th><th>earlier implementation</th></tr>",
        *table,
        "</table></div>",
    ]
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
