"""The ``mltricks`` command: ``list``, ``run`` and ``report``.

Exit status: 0 when everything ran, 1 when an experiment failed (the others still ran), 2 for a
usage error (unknown experiment, bad ``--set``, missing ``--data`` path, an unavailable device,
an ``--out`` that cannot be written) or when the run folder stops being writable mid-run (a
full disk): the next experiments would fail the same way, so none is started.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mltricks._utils.extras import MissingExtraError
from mltricks.lab import registry, tracking
from mltricks.lab.config import ConfigError, field_types, resolve_config

USAGE_ERROR = 2
# at most this many seeds per run, each at most MAX_SEED: experiments derive seeds such as
# seed * 1000 + k, which must stay below NumPy's 2**32
MAX_SEEDS = 1000
MAX_SEED = 999_999


class UsageError(Exception):
    """A mistake in the command line; printed as one line, exit status 2."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-9"`` or a mix such as ``"0-4,7"``: at most ``MAX_SEEDS`` distinct
    seeds in ``[0, MAX_SEED]``."""
    ranges: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                first, last = part.split("-", 1) if not part.startswith("-") else (part, part)
                if int(first) > int(last):
                    raise ValueError
                ranges.append((int(first), int(last)))
            elif part:
                ranges.append((int(part), int(part)))
    except ValueError:
        raise UsageError(
            f"--seeds {text!r}: expected integers like 0,1,2 or a range like 0-9"
        ) from None
    if not ranges or any(low < 0 for low, _ in ranges):
        raise UsageError(f"--seeds {text!r}: expected non-negative integers like 0,1,2 or 0-9")
    if any(high > MAX_SEED for _, high in ranges):
        raise UsageError(f"--seeds {text!r}: seeds must be at most {MAX_SEED:,}")
    seeds: dict[int, None] = {}  # distinct, in the order given
    for low, high in ranges:
        for seed in range(low, high + 1):
            seeds[seed] = None
            if len(seeds) > MAX_SEEDS:  # stops 0-999999 before building it
                raise UsageError(f"--seeds {text!r}: at most {MAX_SEEDS:,} seeds per run")
    return tuple(seeds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mltricks",
        description="Reproduce the headline result of every mltricks technique and report it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")

    run = sub.add_parser("run", help="run experiments into run folders")
    run.add_argument("names", nargs="+", metavar="NAME", help="experiment names, or 'all'")
    run.add_argument("--preset", choices=registry.PRESET_NAMES, default="quick")
    run.add_argument(
        "--seeds", type=str, default=None, help="e.g. 0,1,2 or 0-9 (default: preset's)"
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Config field (repeatable)",
    )
    run.add_argument("--out", type=Path, default=Path("runs"), help="root of the run folders")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    run.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a real data set on disk, or a packaged one by name (fashion-mnist: Debian's "
        "dataset-fashion-mnist)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--track",
        choices=tracking.TRACKERS,
        default=None,
        help="also log each seed to TensorBoard (in the run folder) or MLflow",
    )
    for flag, field in registry.OPTIONS.items():
        run.add_argument(
            flag,
            dest=f"option_{field}",
            default=None,
            metavar="VALUE",
            help=f"same as --set {field}=VALUE",
        )

    report = sub.add_parser("report", help="write DIR/index.html from the run folders in DIR")
    report.add_argument("dir", nargs="?", type=Path, default=Path("runs"))
    report.add_argument(
        "--markdown", action="store_true", help="print the results table as Markdown instead"
    )
    return parser


def config_fields(config_cls: type) -> set[str]:
    return set(field_types(config_cls))


@dataclass(frozen=True)
class Plan:
    """One experiment to run: its module, resolved config, seeds and the command to rerun it."""

    name: str
    module: ModuleType
    config: Any
    seeds: tuple[int, ...]
    command: str


def cmd_list() -> int:
    width = max(len(name) for name in registry.names())
    for name in registry.names():
        try:
            module = registry.load(name)
            line = f"{module.DESCRIPTION}  [{module.SYSTEM}]"
        except Exception as error:  # a broken module is listed, not fatal
            line = f"(cannot load: {type(error).__name__}: {error})"
        print(f"{name:<{width}}  {line}")
    return 0


def _selected(names: Sequence[str]) -> list[str]:
    known = registry.names()
    if "all" in names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"unknown experiment {', '.join(map(repr, unknown))}; choose from: {', '.join(known)}, all"
        )
    return list(dict.fromkeys(names))


def _command_line(
    name: str, args: argparse.Namespace, seeds: tuple[int, ...], flags: Mapping[str, str]
) -> str:
    """The command that reruns one experiment: its preset, seeds, ``--set`` and flags."""
    parts = ["mltricks", "run", name, "--preset", args.preset, "--seeds", ",".join(map(str, seeds))]
    for assignment in args.overrides:
        parts += ["--set", assignment]
    for flag, value in flags.items():
        parts += [flag, value]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    return shlex.join(parts)


def _plan(
    name: str, module: ModuleType, args: argparse.Namespace, options: Mapping[str, str]
) -> Plan:
    """Resolve one experiment's config (preset, ``--set``, flags) and seeds."""
    flags = {field: flag for flag, field in registry.OPTIONS.items()}
    try:
        config = resolve_config(
            module,
            args.preset,
            assignments=args.overrides,
            options=options,
            option_flags=flags,
        )
    except ConfigError as error:
        raise UsageError(f"{name}: {error}") from None
    seeds = parse_seeds(args.seeds) if args.seeds else tuple(module.PRESETS[args.preset].seeds)
    used = {flags[f]: value for f, value in options.items() if f in config_fields(module.Config)}
    return Plan(name, module, config, seeds, _command_line(name, args, seeds, used))


def _plans(args: argparse.Namespace) -> list[Plan]:
    """Every selected experiment's plan, after checking ``--data`` and the experiment flags."""
    selected = _selected(args.names)
    # experiment-specific flags (--model, --text-column) apply where the Config has the field
    options = {
        field: getattr(args, f"option_{field}")
        for field in registry.OPTIONS.values()
        if getattr(args, f"option_{field}", None) is not None
    }
    if args.data is not None:
        from mltricks.data import resolve_data_path

        try:  # a short name of a packaged data set ("fashion-mnist") or a path
            args.data = resolve_data_path(args.data)
        except FileNotFoundError as error:
            raise UsageError(f"--data: {error}") from None
        if not args.data.exists():
            raise UsageError(f"--data {str(args.data)!r}: path does not exist")
    modules = {name: registry.load(name) for name in selected}
    if args.data is not None:
        refusing = [n for n, m in modules.items() if m.DATA is None]
        if refusing:
            raise UsageError(f"--data: {', '.join(refusing)} read no real data set")
    for field in options:
        if not any(field in config_fields(m.Config) for m in modules.values()):
            flag = next(f for f, name in registry.OPTIONS.items() if name == field)
            raise UsageError(f"{flag}: none of {', '.join(modules)} has a {field} setting")
    return [_plan(name, module, args, options) for name, module in modules.items()]


def _check_device(name: str) -> None:
    """Select the device, or refuse one torch cannot use (before any run folder is made)."""
    from mltricks.lab import engine

    try:
        engine.set_device(name)
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"--device {name}: {error}") from None


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot hold run folders (a file, a path under a file, a
    read-only folder), before any run starts."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UsageError(
            f"--out {str(out)!r}: cannot write there ({error.strerror or error})"
        ) from None


def cmd_run(args: argparse.Namespace) -> int:
    if args.track:  # a missing tracker library is a usage error, found before anything loads
        try:
            tracking.require_tracker(args.track)
        except MissingExtraError as error:
            raise UsageError(str(error)) from None
    from mltricks.lab import engine, runs

    plans = _plans(args)
    if args.track:
        plans = [
            dataclasses.replace(
                p, module=tracking.tracked(p.module, args.track, name=p.name, out=args.out)
            )
            for p in plans
        ]
    _check_device(args.device)
    _check_out(args.out)
    engine.set_progress(not args.no_progress)
    failures = []
    for index, plan in enumerate(plans):
        started = time.time()
        print(f"== {plan.name} ({args.preset}, seeds {','.join(map(str, plan.seeds))})", flush=True)
        try:
            path, state, failure = runs.execute(
                plan.name,
                plan.module,
                plan.config,
                preset=args.preset,
                seeds=plan.seeds,
                out=args.out,
                data=args.data,
                command=plan.command,
            )
        except runs.OutputError as error:
            rest = [p.name for p in plans[index + 1 :]]
            raise UsageError(
                f"{plan.name}: {error}" + (f"; not started: {', '.join(rest)}" if rest else "")
            ) from None
        if state != "done":
            failures.append(plan.name)
            print(f"   FAILED after {time.time() - started:.1f}s: {failure}", flush=True)
        else:
            print(f"   done in {time.time() - started:.1f}s -> {path}", flush=True)
            for verdict in runs.read_json(path / "claims.json", []) if path else []:
                label = verdict.get("verdict") or runs.VERDICT_LABELS[verdict["held"]]
                reason = f" ({verdict['reason']})" if label in ("not applicable", "defect") else ""
                print(f"   claim {label}: {verdict['text']}{reason}", flush=True)
    if failures:
        print(f"failed experiments: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mltricks.lab import report

    if not args.dir.is_dir():
        raise UsageError(f"report: {str(args.dir)!r} is not a folder of runs")
    try:
        if args.markdown:
            print(report.markdown_table(args.dir))
            return 0
        path = report.write_report(args.dir)
    except report.ReportError as error:
        raise UsageError(f"report: {error}") from None
    except OSError as error:
        raise UsageError(
            f"report: cannot write in {str(args.dir)!r} ({error.strerror or error})"
        ) from None
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        return cmd_report(args)
    except UsageError as error:
        print(f"mltricks: error: {error}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
