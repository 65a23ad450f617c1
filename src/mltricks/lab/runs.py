"""Running experiments into run folders, each (experiment, seed) one task.

``execute_all`` is what ``mltricks run`` does: it opens a run folder per experiment (its
``config.json`` and a ``running`` status), hands every seed to a backend of
``mltricks.lab.parallel`` as a ``SeedTask``, takes each ``SeedResult`` into its folder as it
arrives, and once all of an experiment's seeds are in, summarises them, judges the claims and
marks the run ``done`` (or ``failed``, naming the seeds that failed; the other seeds still ran).
``execute`` runs one experiment in this process: the same code, with the inline backend.

A seed's task (``run_seed``) runs wherever the backend puts it: this process, a local worker
process, a machine of a Dask cluster. It seeds everything, runs the experiment's ``run`` into a
scratch folder of its own, and returns the metrics and the files it wrote (figures, TensorBoard
events; its log lines too where it cannot append them to the run folder's log as they happen);
this process writes them into the run folder. Results are therefore the
same whichever backend ran them, and workers need no access to ``--out``.

Nothing raised by an experiment escapes: it is recorded in ``status.json`` and ``log.txt``. A
write into a run folder that fails raises ``OutputError``; Ctrl-C marks every unfinished run
``interrupted`` and cancels the tasks not yet run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import platform
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np
import torch

from mltricks.lab import engine
from mltricks.lab.experiment import Baseline, RunContext
from mltricks.lab.parallel import Backend, InlineBackend, Progress
from mltricks.lab.registry import PRESET_NAMES
from mltricks.lab.run_folder import OutputError, Run, read_json, to_jsonable
from mltricks.lab.stats import Estimate, in_range, mean_interval, metric_range
from mltricks.lab.tracking import Session, Tracker
from mltricks.lab.verdicts import judge, summarize_metrics

__all__ = [
    "Outcome",
    "Plan",
    "SeedResult",
    "SeedTask",
    "below_baselines",
    "execute",
    "execute_all",
    "run_seed",
]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


# --- a seed's task ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SeedTask:
    """One seed of one experiment: everything ``run_seed`` needs, picklable for a worker.

    ``module`` is the experiment module, or its import name where the task travels to another
    process. ``device`` and ``torch_threads`` None keep this process's settings (the inline
    backend); ``progress`` None keeps its progress bars.
    """

    name: str
    module: ModuleType | str
    config: Any
    preset: str
    seed: int
    seeds: tuple[int, ...]
    data: Path | None
    folder: Path
    tracker: Tracker | None = None
    device: str | None = None
    torch_threads: int | None = None
    progress: bool | None = None


@dataclasses.dataclass
class SeedResult:
    """What a seed's task returns: its metrics (None when it failed, with ``error`` and
    ``trace``), the files it wrote by relative path, its figures' list, its log lines, its
    times, and a tracker failure that did not stop it."""

    name: str
    seed: int
    metrics: dict[str, Any] | None = None
    error: str | None = None
    trace: str = ""
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    figures: list[dict[str, str]] = dataclasses.field(default_factory=list)
    log_text: str = ""
    started: float = 0.0
    seconds: float = 0.0
    cpu_s: float = 0.0
    host: str = ""
    tracking_error: str | None = None


# torch's seeds, threads and device are global to a process: a worker process that was given
# several threads must still run one task at a time
_one_task_at_a_time = threading.Lock()


def run_seed(task: SeedTask) -> SeedResult:
    """Run one seed of one experiment in a scratch folder and return what it produced."""
    with _one_task_at_a_time, tempfile.TemporaryDirectory(prefix="mltricks-seed-") as scratch:
        if task.torch_threads:
            torch.set_num_threads(task.torch_threads)
        if task.device is not None:
            engine.set_device(task.device)
        if task.progress is not None:
            engine.set_progress(task.progress)
        # log lines go straight to the run folder where this process reaches it (this machine,
        # or a shared file system), so that a long seed's progress shows as it happens
        live = task.folder / "log.txt" if os.access(task.folder, os.W_OK) else None
        run = Run(Path(scratch), writer=engine.is_main_process(), folder=task.folder, log_file=live)
        result = SeedResult(task.name, task.seed, host=socket.gethostname(), started=time.time())
        cpu_started = time.process_time()
        try:
            module = (
                task.module
                if isinstance(task.module, ModuleType)
                else importlib.import_module(task.module)
            )
            result.metrics, result.tracking_error = _run_one(task, module, run)
        except Exception as error:  # recorded by the caller, never lost
            result.error = f"{type(error).__name__}: {error}"
            result.trace = traceback.format_exc()
            with contextlib.suppress(Exception):
                run.log(result.trace)
        result.seconds = time.time() - result.started
        result.cpu_s = time.process_time() - cpu_started
        result.files, result.log_text = _written(Path(scratch))
        result.figures = list(run.figures)
        return result


def _run_one(task: SeedTask, module: ModuleType, run: Run) -> tuple[dict[str, Any], str | None]:
    run.log(f"{task.name}: seed {task.seed} ({task.preset} preset)")
    ctx = RunContext(task.seed, task.seeds, task.preset, engine.device(), task.data, run)
    # the tracker starts before seeding: a tracked seed sees the same randomness as without
    label = f"seed-{task.seed}"
    with _tracking(task.tracker, ctx, task.name, task.config, label, seed=task.seed) as session:
        engine.seed_everything(task.seed)
        started = time.time()
        with (
            warnings.catch_warnings(record=True) as caught,
            engine.on_epoch(session.log_epoch),
        ):
            warnings.simplefilter("default")
            metrics = module.run(task.config, ctx)
        seconds = time.time() - started
        session.log_final(metrics)
    for message in dict.fromkeys(str(w.message) for w in caught):
        run.log(f"warning: {message}")
    if not isinstance(metrics, dict):
        raise TypeError(f"{task.name}.run must return a dict of metrics, got {type(metrics)}")
    return to_jsonable({**metrics, "seconds": seconds}), session.failure


@contextlib.contextmanager
def _tracking(
    tracker: Tracker | None, ctx: RunContext, name: str, config: Any, label: str, **extra: Any
) -> Iterator[Session]:
    """The tracker run of one seed (or the summary), or a session that logs nothing; a tracker
    failure stays in ``session.failure`` and never stops the block."""
    if tracker is None:
        yield Session(None, "")
        return
    with tracker.session(ctx, experiment=name, label=label, cfg=config, **extra) as session:
        yield session


def _written(scratch: Path) -> tuple[dict[str, bytes], str]:
    """The files a task wrote (its figures' list and log excepted), and its log text."""
    files = {}
    for path in sorted(scratch.rglob("*")):
        relative = path.relative_to(scratch).as_posix()
        if path.is_file() and relative not in ("figures.json", "log.txt"):
            files[relative] = path.read_bytes()
    log = scratch / "log.txt"
    return files, log.read_text(encoding="utf-8") if log.is_file() else ""


# --- an experiment's run, on this side ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """One experiment to run: its name, module, resolved config, seeds, and the command line
    that reruns it (recorded in ``config.json``)."""

    name: str
    module: ModuleType
    config: Any
    seeds: tuple[int, ...]
    command: str = ""


@dataclasses.dataclass
class Outcome:
    """How one experiment's run ended: its folder, ``done``/``failed``/``interrupted``, and
    the error text when it did not finish."""

    name: str
    path: Path | None
    state: str
    failure: str | None = None


@dataclasses.dataclass
class _Job:
    """One experiment's run folder while its seeds come in."""

    plan: Plan
    preset: str
    data: Path | None
    out: Path
    tracker: Tracker | None = None
    run: Run = dataclasses.field(init=False)
    tracking_error: str | None = None
    per_seed: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)
    first_started: float = dataclasses.field(default_factory=time.time)
    cpu_s: float = 0.0
    outcome: Outcome | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def opened(self) -> bool:
        return hasattr(self, "run")

    def open(self) -> None:
        """Claim the run folder, write ``config.json`` and a ``running`` status."""
        if engine.is_main_process():
            self.run = Run.create(self.out, self.name)
        else:  # another process of `accelerate launch`: trains along, writes nothing
            self.run = Run(self.out / self.name, writer=False)
        self.run.write_json(
            "config.json",
            {
                "experiment": self.name,
                "system": self.plan.module.SYSTEM,
                "preset": self.preset,
                "seeds": list(self.plan.seeds),
                "config": dataclasses.asdict(self.plan.config),
                "data": str(self.data) if self.data else None,
                "command": self.plan.command,
                "argv": sys.argv,
                "device": str(engine.device()),
                "num_processes": engine.accelerator().num_processes,
                "started": _now(),
                "versions": versions(),
            },
        )
        self.run.set_status("running", started=_now(), pid=os.getpid(), host=socket.gethostname())

    def task(self, seed: int, **settings: Any) -> SeedTask:
        module: ModuleType | str = self.plan.module
        if settings.get("device") is not None:  # another process: it imports the module
            module = self.plan.module.__name__
        return SeedTask(
            self.name,
            module,
            self.plan.config,
            self.preset,
            seed,
            self.plan.seeds,
            self.data,
            self.run.folder,
            # a tracker that failed stays off for the seeds not yet handed out
            None if self.tracking_error else self.tracker,
            **settings,
        )

    def take(self, result: SeedResult) -> None:
        """One seed's result into the folder: its files, log, metrics or failure."""
        self.first_started = min(self.first_started, result.started or self.first_started)
        self.cpu_s += result.cpu_s
        self.run.add_files(result.files, result.figures, result.log_text)
        if result.tracking_error and not self.tracking_error:
            self.tracking_error = (
                f"{result.tracking_error}; tracking stopped for the rest of this run"
            )
            self.run.log(f"warning: {self.tracking_error}")
        if result.metrics is None:
            self.failed[result.seed] = result.error or "failed"
        else:
            self.per_seed[result.seed] = result.metrics
            ordered = {s: self.per_seed[s] for s in self.plan.seeds if s in self.per_seed}
            self.run.write_json("metrics.json", {"per_seed": ordered, "summary": {}})

    @property
    def complete(self) -> bool:
        return len(self.per_seed) + len(self.failed) == len(self.plan.seeds)

    def finish(self) -> Outcome:
        """Summarise, judge and mark the run done, once every seed is in (failed when any
        seed failed: the others' metrics stay in ``metrics.json``)."""
        try:
            if self.failed:
                first = min(self.failed)
                where = f"seed {first}: " if len(self.plan.seeds) > 1 else ""
                others = f" (and seeds {sorted(self.failed)[1:]})" if len(self.failed) > 1 else ""
                raise _SeedFailed(f"{where}{self.failed[first]}{others}")
            cpu_started = time.process_time()
            summary = self._summarize()
            verdicts = judge(
                self.plan.module.CLAIMS,
                summary,
                self.preset,
                len(self.plan.seeds),
                log=self.run.log,
            )
            self.run.write_json("claims.json", verdicts)
            for verdict in verdicts:
                self.run.log(f"claim {verdict['verdict'].upper()}: {verdict['text']}")
            gaps = below_baselines(self.plan.module, summary, self.data, self.preset)
            for gap in gaps:
                self.run.log(f"warning: {gap}")
            self.cpu_s += time.process_time() - cpu_started
            extra = {"warnings": gaps} if gaps else {}
            self.run.set_status(
                "done", finished=_now(), **self._timing(), **self._tracked(), **extra
            )
            self.outcome = Outcome(self.name, self.run.path, "done")
        except OutputError as error:
            self.fail(error)
            raise
        except Exception as error:  # a failed experiment is recorded, never lost
            self.fail(error)
        return self.outcome  # type: ignore[return-value]

    def _summarize(self) -> dict[str, Estimate]:
        """Every scalar metric's estimate over seeds, plus what the experiment's
        ``summarize`` adds (cross-seed figures and metrics); saved in ``metrics.json``."""
        per_seed = {seed: self.per_seed[seed] for seed in self.plan.seeds}
        results = list(per_seed.values())
        summary = summarize_metrics(results)
        summarize = getattr(self.plan.module, "summarize", None)
        if summarize is not None:
            ctx = RunContext(
                self.plan.seeds[0],
                self.plan.seeds,
                self.preset,
                engine.device(),
                self.data,
                self.run,
            )
            tracker = None if self.tracking_error else self.tracker
            label, seeds = "summary", list(self.plan.seeds)
            with _tracking(
                tracker, ctx, self.name, self.plan.config, label, seeds=seeds
            ) as session:
                extra = summarize(self.plan.config, MappingProxyType(dict(summary)), results, ctx)
                session.log_estimates(summary)
                if isinstance(extra, Mapping):
                    session.log_estimates(extra)
            if session.failure and not self.tracking_error:
                self.tracking_error = (
                    f"{session.failure}; tracking stopped for the rest of this run"
                )
                self.run.log(f"warning: {self.tracking_error}")
            for key, value in (extra or {}).items():
                estimate = value if isinstance(value, Estimate) else mean_interval([value])
                summary[key] = in_range(estimate, metric_range(key))
        self.run.write_json("metrics.json", {"per_seed": per_seed, "summary": summary})
        return summary

    def _timing(self) -> dict[str, float]:
        """Wall time since its first seed started, CPU time of its seeds and summary (in every
        process that ran them) and this machine's load average."""
        return {
            "duration_s": round(max(0.0, time.time() - self.first_started), 2),
            "cpu_s": round(self.cpu_s, 2),
            "load_average": round(os.getloadavg()[0], 2),
        }

    def _tracked(self) -> dict[str, str]:
        return {"tracking_error": self.tracking_error} if self.tracking_error else {}

    def fail(self, error: BaseException) -> None:
        """Record the run as failed as far as the folder can still be written.

        On a full disk the log and the claims may not fit: the status is then overwritten in
        place, and failing that, the stale heartbeat shows the run as interrupted.
        """
        text = (
            f"{type(error).__name__}: {error}" if not isinstance(error, _SeedFailed) else str(error)
        )
        trace = "" if isinstance(error, _SeedFailed) else traceback.format_exc()
        self._close("failed", text, trace)
        self.outcome = Outcome(self.name, self.run.path, "failed", text)

    def interrupt(self) -> None:
        """Mark the run interrupted (Ctrl-C): its finished seeds stay in ``metrics.json``."""
        self._close("interrupted", "interrupted (Ctrl-C) before all seeds were in", "")
        self.outcome = Outcome(self.name, self.run.path, "interrupted", "interrupted")

    def _close(self, state: str, text: str, trace: str) -> None:
        reason = "run failed" if state == "failed" else "run interrupted"
        claims = [
            {
                "text": claim.text,
                "held": None,
                "verdict": "not judged",
                "numbers": {},
                "presets": list(claim.presets),
                "reason": reason,
            }
            for claim in self.plan.module.CLAIMS
        ]
        status = {"finished": _now(), **self._timing(), "error": text, **self._tracked()}
        steps = (
            lambda: self.run.log(trace or text),
            lambda: self.run.write_json("claims.json", claims),
            lambda: self.run.set_status(state, **status, **({"traceback": trace} if trace else {})),
        )
        for step in steps:
            with contextlib.suppress(Exception):
                step()
        if self.run.writer and self.run.state != state:
            with contextlib.suppress(Exception):
                self.run.force_status(state, **status)
        self.run.stop_heartbeat()


def below_baselines(
    module: ModuleType,
    summary: Mapping[str, Estimate],
    data: Path | None,
    preset: str | None = None,
) -> list[str]:
    """One line for each of the experiment's ``BASELINES`` whose network's mean is below its
    baseline's: a preset or ``--set`` that leaves the network below what a practitioner would
    try first says so at the end of the run (not an error), naming what closes the gap from
    ``preset`` (never the preset the run is already on)."""
    lines = []
    for baseline in getattr(module, "BASELINES", ()):
        if baseline.data_only and data is None:
            continue
        ours, theirs = summary.get(baseline.metric), summary.get(baseline.baseline)
        if ours is None or theirs is None or not ours.mean < theirs.mean:
            continue
        lines.append(
            f"{baseline.what} reached {baseline.metric} = {ours.mean:.3g}, below "
            f"{baseline.baseline} = {theirs.mean:.3g} on the same data; "
            f"{_fix_from(baseline, preset)}"
        )
    return lines


def _fix_from(baseline: Baseline, preset: str | None) -> str:
    """What closes the gap from a run on ``preset``: the baseline's preset too when the run is
    on a smaller one ("--preset full, or more steps (--set steps=2000)"), else its setting."""
    closes = baseline.preset
    if closes is None or preset not in PRESET_NAMES or closes not in PRESET_NAMES:
        return baseline.fix
    if PRESET_NAMES.index(preset) < PRESET_NAMES.index(closes):
        return f"--preset {closes}, or {baseline.fix}"
    return baseline.fix


class _SeedFailed(Exception):
    """One or more seeds failed; their errors are in the log, the text names them."""


# --- many experiments on a backend ----------------------------------------------------------


def execute_all(
    plans: Sequence[Plan],
    *,
    preset: str,
    out: Path,
    data: Path | None = None,
    tracker: Tracker | None = None,
    backend: Backend | None = None,
    settings: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = lambda line: None,
    on_start: Callable[[Plan], None] = lambda plan: None,
    on_done: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run every plan's seeds on ``backend`` (inline by default) into new run folders.

    Args:
        plans: the experiments, in the order given (the inline backend keeps it; a parallel
            one starts the longest known tasks first: durations of earlier runs in ``out``).
        preset, out, data, tracker: as for ``execute``.
        settings: ``SeedTask`` settings for a backend in other processes (``device``,
            ``torch_threads``, ``progress``).
        echo: prints a progress line per finished task.
        on_start: called with each plan as its first task is handed to the backend (with the
            inline backend, when it starts; a parallel one takes every task at once).
        on_done: called with each experiment's ``Outcome`` as soon as all its seeds are in.

    Returns:
        One ``Outcome`` per plan, in the order of ``plans``.

    Raises:
        OutputError: a run folder cannot be written (a full disk): every unfinished run is
            marked failed where it still can be, and no further task starts.
        KeyboardInterrupt: after cancelling the tasks not yet run and marking every unfinished
            run interrupted.
    """
    backend = backend or InlineBackend()
    settings = dict(settings or {})
    jobs = [_Job(plan, preset, data, Path(out), tracker) for plan in plans]
    by_name = {job.name: job for job in jobs}

    def tasks() -> Iterator[SeedTask]:  # made as the backend takes them
        for job in jobs:
            job.open()
            on_start(job.plan)
            for seed in job.plan.seeds:
                yield job.task(seed, **settings)

    expected = _past_seconds(out, preset, data)
    progress = Progress(sum(len(p.seeds) for p in plans), backend.workers)
    try:
        for task, result in backend.run(run_seed, tasks(), lambda task: expected.get(task.name)):
            if not isinstance(result, SeedResult):  # the backend lost the task (a dead worker)
                result = SeedResult(
                    task.name, task.seed, error=f"{type(result).__name__}: {result}"
                )
            job = by_name[result.name]
            job.take(result)
            progress.finished(result.seconds)
            state = "done" if result.metrics is not None else f"FAILED ({result.error})"
            echo(
                f"   {result.name} seed {result.seed} {state} in {result.seconds:.1f}s "
                f"{progress.line(backend.running(progress.total - progress.done))}"
            )
            if job.complete:
                on_done(job.finish())
    except BaseException as error:
        with contextlib.suppress(Exception):
            backend.cancel()
        for job in jobs:
            if job.opened and job.outcome is None:
                job.interrupt() if isinstance(error, KeyboardInterrupt) else job.fail(error)
        raise
    finally:
        for job in jobs:
            if job.opened:
                job.run.stop_heartbeat()
    return [job.outcome or Outcome(job.name, None, "not started") for job in jobs]


def _past_seconds(out: Path, preset: str, data: Path | None) -> dict[str, float]:
    """Seconds per seed of each experiment's latest finished run in ``out`` on the same
    preset and data: the priorities that start the longest tasks first."""
    seconds: dict[str, float] = {}
    for config_file in sorted(Path(out).glob("*/*/config.json")):
        config = read_json(config_file, {})
        metrics = read_json(config_file.with_name("metrics.json"), {})
        if not isinstance(config, dict) or not isinstance(metrics, dict):
            continue
        if config.get("preset") != preset or config.get("data") != (str(data) if data else None):
            continue
        per_seed = metrics.get("per_seed")
        times = (
            [m.get("seconds") for m in per_seed.values() if isinstance(m, dict)]
            if isinstance(per_seed, dict)
            else []
        )
        finite = [float(t) for t in times if isinstance(t, int | float)]
        if finite and isinstance(config.get("experiment"), str):
            seconds[config["experiment"]] = float(np.median(finite))
    return seconds


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
    tracker: Tracker | None = None,
) -> tuple[Path | None, str, str | None]:
    """Run one experiment over its seeds in this process, into a new run folder.

    Returns the folder, the final state (``done`` or ``failed``) and the error text if any.

    With a ``tracker``, each seed and the ``summarize`` step are tracker runs, and every epoch of
    their ``engine.fit`` calls reaches the tracker (``engine.on_epoch``). A tracker failure
    neither fails the run nor loses a result: it is written to ``log.txt`` and to
    ``status.json`` as ``tracking_error``, and tracking stops for the rest of the run.

    Raises:
        OutputError: the run folder cannot be written (a full disk, a read-only mount); the
            failure is recorded where it still can be.
    """
    plan = Plan(name, module, config, tuple(seeds), command)
    (outcome,) = execute_all([plan], preset=preset, out=Path(out), data=data, tracker=tracker)
    return outcome.path, outcome.state, outcome.failure
