"""The lab's tasks on worker processes (``--jobs``) and on a Dask cluster (``--cluster``): the
run folders hold what one process writes; failures, dead workers and bad options are reported
in one line each."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mltricks.lab import parallel, registry
from mltricks.lab.cli import main

TIMINGS = {"seconds", "pid"}  # what differs between two runs of the same seeds


def _folder(out: Path, name: str) -> Path:
    (folder,) = (out / name).iterdir()
    return folder


def _read(folder: Path, file: str):
    return json.loads((folder / file).read_text())


def _without_timings(metrics: dict) -> dict:
    per_seed = {
        seed: {k: v for k, v in values.items() if k not in TIMINGS}
        for seed, values in metrics["per_seed"].items()
    }
    summary = {k: v for k, v in metrics["summary"].items() if k not in TIMINGS}
    return {"per_seed": per_seed, "summary": summary}


@pytest.mark.slow
def test_jobs_write_the_run_folders_one_process_writes(tmp_path, capsys):
    names = ["positional-encoding", "fake-news"]  # deterministic: no thread-count dependence
    for label, extra in (("inline", []), ("jobs1", ["--jobs", "1"]), ("jobs2", ["--jobs", "2"])):
        argv = ["run", *names, "--preset", "smoke", "--seeds", "0,1", *extra]
        assert main([*argv, "--out", str(tmp_path / label)]) == 0
    printed = capsys.readouterr().out
    assert "running 4 tasks of 2 experiment(s) on 2 worker(s)" in printed
    assert "[4/4 tasks done, 0 running]" in printed
    for name in names:
        folders = {label: _folder(tmp_path / label, name) for label in ("inline", "jobs1", "jobs2")}
        reference = folders.pop("inline")
        for folder in folders.values():
            assert _without_timings(_read(folder, "metrics.json")) == _without_timings(
                _read(reference, "metrics.json")
            )
            assert _read(folder, "claims.json") == _read(reference, "claims.json")
            assert _read(folder, "figures.json") == _read(reference, "figures.json")
            assert _read(folder, "status.json")["state"] == "done"
            assert {p.name for p in folder.glob("*.png")} == {
                p.name for p in reference.glob("*.png")
            }
            config = _read(folder, "config.json")
            assert config["config"] == _read(reference, "config.json")["config"]


@pytest.mark.slow
def test_a_failed_seed_and_a_dead_worker_are_reported_and_the_other_seeds_kept(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(registry.EXPERIMENTS, "parallel", "tests.lab.parallel_experiment")
    argv = ["run", "parallel", "--seeds", "0,1,2", "--set", "raise_seed=1", "--set", "exit_seed=2"]
    assert main([*argv, "--jobs", "2", "--out", str(tmp_path)]) == 1
    printed = capsys.readouterr()
    folder = _folder(tmp_path, "parallel")
    status = _read(folder, "status.json")
    assert status["state"] == "failed"
    assert status["error"].startswith("seed 1: ValueError: seed 1 fails on purpose")
    assert "and seeds [2]" in status["error"]
    assert list(_read(folder, "metrics.json")["per_seed"]) == ["0"]  # the seed that finished
    assert (folder / "line-0.png").exists()
    log = (folder / "log.txt").read_text()
    assert "seed 1 fails on purpose" in log and "Traceback" in log
    # the worker that ended mid-task is named with its task, in one line
    (dead,) = [line for line in printed.out.splitlines() if "parallel seed 2 FAILED" in line]
    assert "KilledWorker" in dead
    assert "failed experiments: parallel" in printed.err


def _already_imported(module: str) -> bool:  # runs in a worker: imports nothing itself
    return module in sys.modules


def test_local_workers_begin_with_what_this_process_imported():
    assert parallel.worker_start_method("linux") == "fork"
    assert parallel.worker_start_method("darwin") == "spawn"  # fork is unsafe on macOS
    assert parallel.worker_start_method("win32") == "spawn"
    if not sys.platform.startswith("linux"):
        pytest.skip("workers are spawned here: they import what their tasks need")
    import mltricks.lab.experiments.positional_encoding  # noqa: F401  (this process has it)

    backend = parallel.open_backend(jobs=1)
    try:
        names = ["mltricks.lab.experiments.positional_encoding", "no.such.module"]
        found = dict(backend.run(_already_imported, names, lambda task: None))
    finally:
        backend.close()
    # a spawned worker would have to import the experiment (and torch) again
    assert found == {names[0]: True, names[1]: False}


class _Closable:
    """A stand-in for the LocalCluster and its Client: notes that it was closed."""

    def __init__(self, *args, **kwargs):
        self.closed = False

    def close(self, timeout=None):
        self.closed = True


@pytest.mark.parametrize(
    ("method", "handler", "interrupted"),
    [
        ("fork", signal.default_int_handler, True),  # Linux, from a terminal
        ("fork", signal.SIG_IGN, False),  # started with SIGINT ignored (nohup, `&`)
        ("spawn", signal.default_int_handler, False),  # spawned workers: the signal is ignored
    ],
)
def test_a_ctrl_c_while_the_local_workers_start_is_acted_on_once_they_are_up(
    method, handler, interrupted, monkeypatch
):
    distributed = pytest.importorskip("distributed")
    cluster, client = _Closable(), _Closable()

    def start_with_a_ctrl_c(jobs):
        signal.raise_signal(signal.SIGINT)  # pressed while the workers start
        return cluster

    monkeypatch.setattr(parallel, "_local_cluster", start_with_a_ctrl_c)
    monkeypatch.setattr(parallel, "worker_start_method", lambda: method)
    monkeypatch.setattr(distributed, "Client", lambda *args, **kwargs: client)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        if interrupted:
            with pytest.raises(KeyboardInterrupt):
                parallel.open_backend(jobs=2)
        else:
            backend = parallel.open_backend(jobs=2)
            assert backend.cluster is cluster
        # the workers are closed before the interrupt, never left running behind it
        assert cluster.closed is interrupted and client.closed is interrupted
        assert signal.getsignal(signal.SIGINT) is handler  # this process's handler is back
    finally:
        signal.signal(signal.SIGINT, previous)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("jobs", ["0", "-1", "1.5", "two", ""])
def test_a_bad_jobs_value_is_one_line_before_any_folder(jobs, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["run", "positional-encoding", "--jobs", jobs, "--out", str(tmp_path)])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "argument --jobs: expected a whole number of worker processes" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_cluster_is_one_line_within_ten_seconds(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.time()
    assert main(["run", "positional-encoding", "--cluster", address, "--out", str(tmp_path)]) == 2
    assert time.time() - started < parallel.CONNECT_TIMEOUT_S + 5
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mltricks: error: --cluster {address}: no Dask scheduler answered")
    assert not any(tmp_path.rglob("*.json"))


def test_cluster_without_the_dask_extra_and_with_jobs_is_refused(tmp_path, monkeypatch, capsys):
    out = ["--out", str(tmp_path)]
    assert main(["run", "positional-encoding", "--jobs", "2", "--cluster", "tcp://x:1", *out]) == 2
    assert "--jobs and --cluster: choose one" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    assert main(["run", "positional-encoding", "--cluster", "tcp://127.0.0.1:1", *out]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "mltricks: error: --cluster tcp://127.0.0.1:1 needs distributed (not installed): "
        "pip install 'mltricks[dask]'"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_two_experiments_on_a_scheduler_and_two_workers_on_the_loopback(tmp_path, capsys):
    python = sys.executable
    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [
                python,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **quiet,
        )
    ]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    **quiet,
                )
            )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "runs"
        argv = ["run", "positional-encoding", "fake-news", "--preset", "smoke", "--seeds", "0,1"]
        assert main([*argv, "--cluster", address, "--out", str(out)]) == 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    assert "on 2 worker(s)" in capsys.readouterr().out
    for name in ("positional-encoding", "fake-news"):
        folder = _folder(out, name)
        assert _read(folder, "status.json")["state"] == "done"
        assert set(_read(folder, "metrics.json")["per_seed"]) == {"0", "1"}
        assert all(v["verdict"] != "defect" for v in _read(folder, "claims.json"))
