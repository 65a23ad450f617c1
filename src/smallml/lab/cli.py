"""The ``smallml`` command: ``list``, ``run`` and ``report``.

Exit status: 0 when everything ran, 1 when an experiment failed (the others still ran), 2 for a
usage error (unknown experiment, bad ``--set``, missing ``--data`` path).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from smallml.lab import registry
from smallml.lab.config import ConfigError, apply_overrides, field_types

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in the command line; printed as one line, exit status 2."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-9"`` or a mix such as ``"0-4,7"``."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                low, high = part.split("-", 1) if not part.startswith("-") else (part, part)
                if int(low) > int(high):
                    raise ValueError
                seeds += range(int(low), int(high) + 1)
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise UsageError(
            f"--seeds {text!r}: expected integers like 0,1,2 or a range like 0-9"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise UsageError(f"--seeds {text!r}: expected non-negative integers like 0,1,2 or 0-9")
    return tuple(dict.fromkeys(seeds))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smallml",
        description="Reproduce the headline result of every smallml technique and report it.",
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
    run.add_argument("--data", type=Path, default=None, help="a real data set on disk")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
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
    name: str, args: argparse.Namespace, seeds: tuple[int, ...], overrides: list[str]
) -> str:
    parts = ["smallml", "run", name, "--preset", args.preset, "--seeds", ",".join(map(str, seeds))]
    for assignment in overrides:
        parts += ["--set", assignment]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    return shlex.join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    from smallml.lab import engine, runs

    selected = _selected(args.names)
    # experiment-specific flags (--model, --text-column) apply where the Config has the field
    options = {
        field: getattr(args, f"option_{field}")
        for field in registry.OPTIONS.values()
        if getattr(args, f"option_{field}", None) is not None
    }
    if args.data is not None and not args.data.exists():
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
    plans = []
    for name, module in modules.items():
        overrides = list(args.overrides) + [
            f"{field}={value}"
            for field, value in options.items()
            if field in config_fields(module.Config)
        ]
        try:
            config = apply_overrides(runs.resolve_config(module, args.preset, {}), overrides)
        except ConfigError as error:
            raise UsageError(f"{name}: {error}") from None
        seeds = parse_seeds(args.seeds) if args.seeds else module.PRESETS[args.preset].seeds
        plans.append((name, module, config, seeds, overrides))

    engine.set_device(args.device)
    engine.set_progress(not args.no_progress)
    failures = []
    for name, module, config, seeds, overrides in plans:
        started = time.time()
        print(f"== {name} ({args.preset}, seeds {','.join(map(str, seeds))})", flush=True)
        path, state, failure = runs.execute(
            name,
            module,
            config,
            preset=args.preset,
            seeds=seeds,
            out=args.out,
            data=args.data,
            command=_command_line(name, args, seeds, overrides),
        )
        if state != "done":
            failures.append(name)
            print(f"   FAILED after {time.time() - started:.1f}s: {failure}", flush=True)
        else:
            print(f"   done in {time.time() - started:.1f}s -> {path}", flush=True)
            for verdict in runs.read_json(path / "claims.json", []) if path else []:
                mark = {True: "held", False: "NOT HELD", None: "not judged"}[verdict["held"]]
                print(f"   claim {mark}: {verdict['text']}", flush=True)
    if failures:
        print(f"failed experiments: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from smallml.lab import report

    if not args.dir.is_dir():
        raise UsageError(f"report: {str(args.dir)!r} is not a folder of runs")
    if args.markdown:
        print(report.markdown_table(args.dir))
        return 0
    path = report.write_report(args.dir)
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
        print(f"smallml: error: {error}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
