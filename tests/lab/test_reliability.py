"""Runs survive being killed, and concurrent runs into one --out do not touch each other."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smallml.lab.report import render
from smallml.lab.runs import run_state

ROOT = Path(__file__).resolve().parents[2]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    code = (
        "import sys; from smallml.lab import registry, cli; "
        "registry.EXPERIMENTS['fake'] = 'tests.lab.fake_experiments'; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    command = [
        sys.executable,
        "-c",
        code,
        "run",
        "fake",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(predicate, timeout=300.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_sigkill_leaves_whole_files_and_the_report_shows_interrupted(tmp_path):
    process = _start(tmp_path, "--preset", "quick", "--set", "sleep=30")
    log = lambda: list(tmp_path.glob("fake/*/log.txt"))  # noqa: E731
    assert _wait_for(lambda: bool(log()) and "seed 0" in log()[0].read_text())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (run,) = (tmp_path / "fake").iterdir()
    for path in run.glob("*.json"):
        json.loads(path.read_text())  # every file that exists is whole
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    assert run_state(run) == "interrupted"
    assert "interrupted" in render(tmp_path)


@pytest.mark.slow
def test_two_processes_writing_to_one_out_folder(tmp_path):
    first = _start(tmp_path, "--preset", "quick", "--set", "rate=0.6", "--set", "sleep=0.5")
    second = _start(tmp_path, "--preset", "quick", "--set", "rate=0.9", "--set", "sleep=0.5")
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert second.wait(timeout=600) == 0, second.stderr.read()
    runs = sorted((tmp_path / "fake").iterdir())
    assert len(runs) == 2
    rates = sorted(json.loads((r / "config.json").read_text())["config"]["rate"] for r in runs)
    assert rates == [0.6, 0.9]
    for run in runs:
        rate = json.loads((run / "config.json").read_text())["config"]["rate"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["per_seed"]["0"]["score"] == pytest.approx(rate)
        assert json.loads((run / "status.json").read_text())["state"] == "done"
