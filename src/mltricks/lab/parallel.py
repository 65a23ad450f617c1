"""Where the lab's tasks run: in this process, on N local worker processes, or on a Dask cluster.

The lab's work is many independent trainings: every (experiment, seed) of a ``mltricks run`` is
one task (``runs.SeedTask``). A backend runs tasks and hands back their results as they finish:

- ``InlineBackend``: one after another in this process (the default, and the only backend under
  ``accelerate launch``, whose processes must train together);
- ``DaskBackend``: ``--jobs N`` starts a Dask ``LocalCluster`` of N single-threaded worker
  processes on this machine; ``--cluster tcp://host:8786`` sends the same tasks to a running
  Dask scheduler. One code path: both are a ``distributed.Client``.

Tasks return their results (metrics, figures as PNG bytes, log lines) to this process, which
writes them into the run folders: workers need mltricks installed (the same version) and the
``--data`` path readable at the same path, but not the ``--out`` folder. A worker that dies
fails its task at once (no silent retry elsewhere), and the result names the task.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mltricks._utils.extras import MissingExtraError, require_extra

__all__ = [
    "Backend",
    "BackendError",
    "DaskBackend",
    "InlineBackend",
    "Progress",
    "open_backend",
    "threads_per_worker",
    "worker_start_method",
]

# how long a --cluster address may take to answer before the command gives up
CONNECT_TIMEOUT_S = 5.0


class BackendError(Exception):
    """A backend that cannot start (an unreachable scheduler, a missing extra): one line."""


class Backend(Protocol):
    """Runs tasks and yields ``(task, outcome)`` as each finishes.

    ``outcome`` is what ``function(task)`` returned, or the ``BaseException`` that stopped it
    outside the function (a worker that died, a task the scheduler lost). ``priority(task)`` is
    the task's expected duration in seconds, or None: a parallel backend starts the longest
    first; the inline backend keeps the order given, and takes ``tasks`` one at a time (so
    that a task made later can depend on what earlier ones returned).
    """

    workers: int

    def run(
        self,
        function: Callable[[Any], Any],
        tasks: Iterable[Any],
        priority: Callable[[Any], float | None],
    ) -> Iterator[tuple[Any, Any]]: ...

    def running(self, pending: int) -> int: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes on a machine of ``cpus`` cores, so that
    together they do not oversubscribe it: ``max(1, cpus // workers)``."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


class InlineBackend:
    """Every task in this process, one after another, in the order given."""

    workers = 1

    def run(
        self,
        function: Callable[[Any], Any],
        tasks: Iterable[Any],
        priority: Callable[[Any], float | None],
    ) -> Iterator[tuple[Any, Any]]:
        for task in tasks:  # the order given: sequential runs keep the command's order
            yield task, function(task)

    def running(self, pending: int) -> int:
        return min(1, pending)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class DaskBackend:
    """Tasks on a ``distributed.Client``: a ``LocalCluster`` this backend owns (``--jobs``) or
    a scheduler someone else runs (``--cluster``)."""

    client: Any
    cluster: Any = None  # the LocalCluster we started, closed with us
    workers: int = 1
    _futures: list[Any] = field(default_factory=list)

    def run(
        self,
        function: Callable[[Any], Any],
        tasks: Iterable[Any],
        priority: Callable[[Any], float | None],
    ) -> Iterator[tuple[Any, Any]]:
        from distributed import as_completed

        tasks = list(tasks)
        by_key = {}
        for task, rank in zip(tasks, longest_first(priority(t) for t in tasks), strict=True):
            # pure=False: two seeds never share a result
            future = self.client.submit(function, task, pure=False, priority=rank)
            by_key[future.key] = task
            self._futures.append(future)
        for future in as_completed(self._futures, loop=self.client.loop):
            task = by_key[future.key]
            if future.status == "finished":
                yield task, future.result()
            else:  # a worker died with it, or it was cancelled: the task's own error
                yield task, _exception_of(future)

    def running(self, pending: int) -> int:
        with contextlib.suppress(Exception):
            self.workers = max(1, sum(self.client.nthreads().values()))
        return min(self.workers, pending)

    def cancel(self) -> None:
        pending = [f for f in self._futures if not f.done()]
        if pending:
            with contextlib.suppress(Exception):
                self.client.cancel(pending, force=True)

    def close(self) -> None:
        self.cancel()
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)


def _exception_of(future: Any) -> BaseException:
    try:
        error = future.exception(timeout=5)
    except BaseException as raised:  # a cancelled future raises instead of returning it
        error = raised
    return error if isinstance(error, BaseException) else RuntimeError(str(error))


def open_backend(*, jobs: int | None = None, cluster: str | None = None) -> Backend:
    """The backend for ``--jobs N`` / ``--cluster ADDRESS`` (neither: ``InlineBackend``).

    Raises:
        BackendError: the ``dask`` extra is missing, or the scheduler does not answer within
            ``CONNECT_TIMEOUT_S`` seconds.
    """
    if jobs is None and cluster is None:
        return InlineBackend()
    flag = f"--cluster {cluster}" if cluster is not None else f"--jobs {jobs}"
    try:
        require_extra("dask", flag)
    except MissingExtraError as error:
        raise BackendError(str(error)) from None
    import dask
    from distributed import Client

    # a dead worker fails its task at once (the default retries it on another worker, three
    # times): the result then says which task was running when the worker died
    dask.config.set({"distributed.scheduler.allowed-failures": 0})
    if cluster is not None:
        try:
            client = Client(cluster, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise BackendError(
                f"--cluster {cluster}: no Dask scheduler answered within "
                f"{CONNECT_TIMEOUT_S:g} s ({type(error).__name__}: {error})"
            ) from None
        workers = max(1, sum(client.nthreads().values()))
        return DaskBackend(client, workers=workers)
    # Ctrl-C reaches every process of the terminal's group: the workers must not act on it (they
    # inherit what SIGINT does while they start) and this process cancels their tasks and
    # closes them in order. A forked worker inherits a handler that only notes the signal; a
    # spawned one (a new interpreter, which keeps no handler) inherits the ignored signal. A
    # Ctrl-C noted while the workers start is acted on once they are up (see _deferred_sigint).
    method = worker_start_method()
    noted: list[int] = []
    previous = signal.signal(
        signal.SIGINT,
        (lambda signum, _: noted.append(signum)) if method == "fork" else signal.SIG_IGN,
    )
    # workers stopped mid-task at Ctrl-C leave their semaphores to multiprocessing's resource
    # tracker, which would report them on the console as it exits: a known, harmless leak
    quiet = "ignore:resource_tracker:UserWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(
        w for w in (os.environ.get("PYTHONWARNINGS"), quiet) if w
    )
    try:
        with dask.config.set({"distributed.worker.multiprocessing-method": method}):
            local = _local_cluster(jobs)
    finally:
        signal.signal(signal.SIGINT, previous)
    backend = DaskBackend(
        Client(local, set_as_default=False), cluster=local, workers=int(jobs or 1)
    )
    _deferred_sigint(backend, noted, previous)
    return backend


def _deferred_sigint(backend: Backend, noted: list[int], previous: Any) -> None:
    """Act on a Ctrl-C noted while the workers started, as SIGINT's own handler ``previous``
    would have: close the new cluster first (its workers would otherwise outlive the interrupt),
    then deliver the signal again (with Python's handler, a ``KeyboardInterrupt`` here). Nothing
    when no Ctrl-C came, or where this process ignores SIGINT."""
    if noted and previous is not signal.SIG_IGN:
        backend.close()
        signal.raise_signal(signal.SIGINT)


def worker_start_method(platform: str = sys.platform) -> str:
    """How ``--jobs`` starts its worker processes: forked from this one on Linux, so that they
    begin with what it has imported (torch, torchvision, the experiments: seconds of imports
    per worker, which a spawned worker repeats); spawned elsewhere (fork is not safe on macOS,
    absent on Windows)."""
    return "fork" if platform.startswith("linux") else "spawn"


def _local_cluster(jobs: int | None) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=jobs,
        threads_per_worker=1,  # one task per process: torch's seeds and threads are global
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: never "8787 is already in use"
        silence_logs=logging.ERROR,
    )


@dataclass
class Progress:
    """One line per finished task: tasks done of total, running now, and the time left.

    The estimate is the mean time of the finished tasks, times the tasks left, over the
    workers: rough at first, better as tasks finish.
    """

    total: int
    workers: int
    started: float = field(default_factory=time.time)
    done: int = 0
    busy_seconds: float = 0.0

    def finished(self, seconds: float) -> None:
        self.done += 1
        self.busy_seconds += max(0.0, seconds)

    def line(self, running: int) -> str:
        left = self.total - self.done
        text = f"[{self.done}/{self.total} tasks done, {running} running"
        if self.done and left:
            remaining = self.busy_seconds / self.done * left / max(1, self.workers)
            text += f", about {_duration(remaining)} left"
        return text + "]"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def longest_first(durations: Iterable[float | None]) -> list[float]:
    """Dask priorities that start the longest tasks first (a known duration as priority;
    unknown ones after all known, in the order given), which shortens the wall time of a set
    of unequal tasks on few workers."""
    durations = list(durations)
    return [
        float(d) if d is not None and math.isfinite(d) else -1.0 - index / max(1, len(durations))
        for index, d in enumerate(durations)
    ]
