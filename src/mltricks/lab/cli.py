"""The ``mltricks`` command: ``list``, ``run`` and ``report``.

Exit status: 0 when everything ran, 1 when an experiment failed (the others still ran), 2 for a
usage error (unknown experiment, bad ``--set``, missing ``--data`` path, an unavailable device,
an ``--out`` that cannot be written) or when the run folder stops being writable mid-run (a
full disk): the next experiments would fail the same way, so none is started.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from mltricks._utils.extras import MissingExtraError
from mltricks.lab import registry, tracking
from mltricks.lab.config import ConfigError, field_types, resolve_config

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
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


def folder_path(text: str) -> Path:
    """A folder argument; an empty one is refused (``Path("")`` would silently mean the
    current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path such as runs, got ''")
    return Path(text)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the usage is one ``--help`` away), as every other
    usage error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def worker_count(text: str) -> int:
    """``--jobs``: a whole number of worker processes, at least 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1 or str(count) != text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a whole number of worker processes, 1 or more; got {text!r}"
        )
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    run.add_argument(
        "--out", type=folder_path, default=Path("runs"), help="root of the run folders"
    )
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    run.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a real data set on disk, or a packaged one by name (fashion-mnist: Debian's "
        "dataset-fashion-mnist)",
    )
    run.add_argument(
        "--jobs",
        type=worker_count,
        default=None,
        metavar="N",
        help="run every (experiment, seed) as a task on N worker processes of this machine",
    )
    run.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="send the tasks to a running Dask scheduler, such as tcp://host:8786",
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
    report.add_argument("dir", nargs="?", type=folder_path, default=Path("runs"))
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
    """Every experiment: its description and system, and the ``--data`` formats it reads."""
    width = max(len(name) for name in registry.names())
    for name in registry.names():
        try:
            module = registry.load(name)
            formats = ", ".join(getattr(module, "DATA_FORMATS", ())) or "none"
            line = f"{module.DESCRIPTION}  [{module.SYSTEM}]  --data: {formats}"
        except Exception as error:  # a broken module is listed, not fatal
            line = f"(cannot load: {type(error).__name__}: {error})"
        print(f"{name:<{width}}  {line}")
    return 0


def _selected(names: Sequence[str]) -> list[str]:
    known = registry.names()
    unknown = [n for n in names if n not in known and n != "all"]
    if unknown:  # also beside 'all': a typo must not pass silently as part of everything
        raise UsageError(
            f"unknown experiment {', '.join(map(repr, unknown))}; choose from: {', '.join(known)}, all"
        )
    if "all" in names:
        return known
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
    """Resolve one experiment's config (preset, ``--data``, ``--set``, flags) and seeds: the
    config the run uses and ``config.json`` records."""
    flags = {field: flag for flag, field in registry.OPTIONS.items()}
    try:
        config = resolve_config(
            module,
            args.preset,
            data=args.data,
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
    if args.data is not None and "all" in args.names:
        modules = _reading(modules, args.data)
    elif args.data is not None:
        refusing = [n for n, m in modules.items() if m.DATA is None]
        if refusing:
            raise UsageError(f"--data: {', '.join(refusing)} read no real data set")
    for field in options:
        if not any(field in config_fields(m.Config) for m in modules.values()):
            flag = next(f for f, name in registry.OPTIONS.items() if name == field)
            raise UsageError(f"{flag}: none of {', '.join(modules)} has a {field} setting")
    return [_plan(name, module, args, options) for name, module in modules.items()]


def _reading(modules: dict[str, ModuleType], data: Path) -> dict[str, ModuleType]:
    """For ``run all --data DIR``: the experiments that read DIR's format, after one line
    naming the ones skipped."""
    from mltricks.lab import data_formats

    kept = {
        name: module
        for name, module in modules.items()
        if data_formats.find_format(data, tuple(getattr(module, "DATA_FORMATS", ()))) is not None
    }
    found = data_formats.find_format(data)
    what = data_formats.FORMATS[found] if found else "no data set in a format the lab reads"
    if not kept:
        raise UsageError(f"--data {str(data)!r} holds {what}; no experiment reads it")
    skipped = [name for name in modules if name not in kept]
    if skipped:
        print(f"--data holds {what}: skipping {', '.join(skipped)} (they read other data)")
    return kept


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


def accelerate_cpu_processes(environ: Mapping[str, str], launcher: Sequence[str]) -> int:
    """How many processes ``accelerate launch --cpu --num_processes N`` asked for, when it
    started this process alone (its CPU launcher is single-process: it sets
    ``ACCELERATE_USE_CPU`` and starts one process without ``WORLD_SIZE``); else 1.

    Args:
        environ: this process's environment.
        launcher: the command line of the process that started this one.
    """
    if environ.get("ACCELERATE_USE_CPU", "").lower() != "true" or "WORLD_SIZE" in environ:
        return 1
    if not any("accelerate" in part for part in launcher[:3]):
        return 1
    for index, part in enumerate(launcher):
        for flag in ("--num_processes", "--num-processes"):
            text = None
            if part == flag and index + 1 < len(launcher):
                text = launcher[index + 1]
            elif part.startswith(flag + "="):
                text = part.split("=", 1)[1]
            if text is not None and text.isdigit():
                return int(text)
    return 1


def _check_accelerate_form() -> None:
    """Refuse `accelerate launch --cpu --num_processes N` (N > 1), which trains on one process
    without a word, naming the forms that do what it asks."""
    try:
        import psutil  # accelerate's own dependency

        launcher = psutil.Process().parent().cmdline()
    except Exception:  # no parent to read: nothing to refuse
        return
    asked = accelerate_cpu_processes(os.environ, launcher)
    if asked > 1:
        raise UsageError(
            f"accelerate launch --cpu --num_processes {asked} starts one process (Accelerate's "
            f"CPU launcher is single-process); for {asked} training processes on the CPU use "
            f"accelerate launch --multi_gpu --num_processes {asked} -m mltricks.lab run ... "
            f"--device cpu, and for {asked} experiments or seeds at once mltricks run ... "
            f"--jobs {asked}"
        )


def cmd_run(args: argparse.Namespace) -> int:
    from mltricks.lab import engine, parallel, runs

    _check_accelerate_form()
    plans = _plans(args)
    _check_device(args.device)
    _check_out(args.out)
    tracker = None
    if args.track:  # checked once, before any run: its extra, and a store MLflow cannot use
        try:
            tracker = tracking.Tracker(args.track, out=args.out)
        except (MissingExtraError, tracking.TrackingError) as error:
            raise UsageError(str(error)) from None
    backend, settings = _backend(args)
    engine.set_progress(not args.no_progress)
    speaks = engine.is_main_process()  # other processes of `accelerate launch` stay quiet
    say = _printer(speaks)
    started: dict[str, float] = {}
    failures: list[str] = []

    def on_start(plan: runs.Plan) -> None:
        started[plan.name] = time.time()
        if isinstance(backend, parallel.InlineBackend):
            say(f"== {plan.name} ({args.preset}, seeds {','.join(map(str, plan.seeds))})")

    def on_done(outcome: runs.Outcome) -> None:
        seconds = time.time() - started.get(outcome.name, time.time())
        if not isinstance(backend, parallel.InlineBackend):
            say(f"== {outcome.name} ({args.preset})")
        if outcome.state != "done":
            failures.append(outcome.name)
            say(f"   FAILED after {seconds:.1f}s: {outcome.failure}")
        else:
            say(f"   done in {seconds:.1f}s -> {outcome.path}")
            _print_verdicts(say, outcome.path)
        status = read_status(outcome.path) if outcome.path else {}
        warnings = [status.get("tracking_error"), *(status.get("warnings") or [])]
        for warning in warnings if speaks else []:  # results are safe: warnings, one line each
            if isinstance(warning, str) and warning:
                print(f"mltricks: warning: {outcome.name}: {warning}", file=sys.stderr)

    if not isinstance(backend, parallel.InlineBackend):
        tasks = sum(len(p.seeds) for p in plans)
        say(f"running {tasks} tasks of {len(plans)} experiment(s) on {backend.workers} worker(s)")
    try:
        runs.execute_all(
            [runs.Plan(p.name, p.module, p.config, p.seeds, p.command) for p in plans],
            preset=args.preset,
            out=args.out,
            data=args.data,
            tracker=tracker,
            backend=backend,
            settings=settings,
            echo=say,
            on_start=on_start,
            on_done=on_done,
        )
    except runs.OutputError as error:
        rest = [p.name for p in plans if p.name not in started]
        raise UsageError(
            f"{error}" + (f"; not started: {', '.join(rest)}" if rest else "")
        ) from None
    finally:
        backend.close()
    if failures:
        print(f"failed experiments: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _backend(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Where the tasks run (``--jobs``, ``--cluster``, else this process) and the settings a
    task takes into another process; refused in one line before any run folder exists."""
    from mltricks.lab import engine, parallel

    if args.jobs is not None and args.cluster is not None:
        raise UsageError("--jobs and --cluster: choose one (--jobs starts a cluster here)")
    if args.jobs is None and args.cluster is None:
        return parallel.InlineBackend(), {}
    flag = "--jobs" if args.jobs is not None else "--cluster"
    if engine.accelerator().num_processes > 1:
        raise UsageError(
            f"{flag}: runs tasks in worker processes of its own; under accelerate launch "
            "(several training processes) leave it out"
        )
    try:
        backend = parallel.open_backend(jobs=args.jobs, cluster=args.cluster)
    except parallel.BackendError as error:
        raise UsageError(str(error)) from None
    threads = parallel.threads_per_worker(args.jobs) if args.jobs else None
    return backend, {"device": args.device, "torch_threads": threads, "progress": False}


def _printer(speaks: bool) -> Any:
    def say(line: str) -> None:
        if speaks:
            print(line, flush=True)

    return say


def read_status(path: Path) -> dict[str, Any]:
    from mltricks.lab.run_folder import read_json

    status = read_json(path / "status.json", {})
    return status if isinstance(status, dict) else {}


def _print_verdicts(say: Any, path: Path | None) -> None:
    from mltricks.lab.run_folder import read_json
    from mltricks.lab.verdicts import VERDICT_LABELS

    verdicts = read_json(path / "claims.json", []) if path else []
    for verdict in verdicts if isinstance(verdicts, list) else []:
        label = verdict.get("verdict") or VERDICT_LABELS[verdict["held"]]
        reason = f" ({verdict['reason']})" if label in ("not applicable", "defect") else ""
        say(f"   claim {label}: {verdict['text']}{reason}")


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
    except KeyboardInterrupt:  # the run folder already says interrupted (runs.execute)
        print("\nmltricks: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `mltricks list | head -1`: the reader left, not an error of ours
        # Python's documented remedy: point stdout at devnull so the interpreter's final flush
        # does not raise a second time
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
