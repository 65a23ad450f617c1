import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smallml.lab import runs
from smallml.lab.runs import Run, atomic_write_json, run_state


def test_atomic_write_leaves_the_old_file_when_serialisation_fails(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_non_finite_numbers_become_null(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"x": float("nan"), "y": [1.0, float("inf")]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": None, "y": [1.0, None]}


def test_concurrent_runs_get_separate_folders(tmp_path):
    made: list[Path] = []
    threads = [
        threading.Thread(target=lambda: made.append(Run.create(tmp_path, "exp").path))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8


def test_a_killed_run_shows_as_interrupted(tmp_path):
    run = Run.create(tmp_path, "exp")
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run.set_status("running", pid=process.pid, host=__import__("socket").gethostname())
    assert run_state(run.path) == "interrupted"
    run.set_status("running", pid=os.getpid(), host=__import__("socket").gethostname())
    assert run_state(run.path) == "running"
    run.set_status("done")
    assert run_state(run.path) == "done"


def test_summaries_only_cover_scalars():
    summary = runs.summarize_metrics([{"a": 1.0, "b": [1, 2], "c": True}, {"a": 3.0, "c": False}])
    assert set(summary) == {"a", "c"}
    assert summary["a"].mean == 2.0 and summary["c"].mean == 0.5


def test_proportions_get_intervals_inside_zero_one():
    summary = runs.summarize_metrics([{"hit": True, "gap": 0.0}] * 9 + [{"hit": False, "gap": 0.0}])
    # numbers that happen to be 0 are not a proportion: no interval around an exact 0
    assert summary["gap"].low == summary["gap"].high == 0.0
    hit = summary["hit"]
    assert hit.mean == 0.9 and 0.0 <= hit.low < 0.9 < hit.high <= 1.0
    # Wilson's interval for 9 of 10 at 95%
    assert abs(hit.low - 0.5958) < 1e-3 and abs(hit.high - 0.9821) < 1e-3
