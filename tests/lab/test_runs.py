import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mltricks.lab import run_folder, runs
from mltricks.lab.config import resolve_config
from mltricks.lab.experiment import Claim, NotApplicable
from mltricks.lab.run_folder import Run, atomic_write_json, run_state
from mltricks.lab.stats import mean_interval
from mltricks.lab.verdicts import judge, summarize_metrics


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
    summary = summarize_metrics([{"a": 1.0, "b": [1, 2], "c": True}, {"a": 3.0, "c": False}])
    assert set(summary) == {"a", "c"}
    assert summary["a"].mean == 2.0 and summary["c"].mean == 0.5


def test_proportions_get_intervals_inside_zero_one():
    summary = summarize_metrics([{"hit": True, "gap": 0.0}] * 9 + [{"hit": False, "gap": 0.0}])
    # numbers that happen to be 0 are not a proportion: no interval around an exact 0
    assert summary["gap"].low == summary["gap"].high == 0.0
    hit = summary["hit"]
    assert hit.mean == 0.9 and 0.0 <= hit.low < 0.9 < hit.high <= 1.0
    # Wilson's interval for 9 of 10 at 95%
    assert abs(hit.low - 0.5958) < 1e-3 and abs(hit.high - 0.9821) < 1e-3


# --- claims: judged, not applicable, or a defect of the experiment --------------------------


def _summary(**means):
    return {name: mean_interval([m - 0.1, m, m + 0.1]) for name, m in means.items()}


def test_judge_reports_held_not_held_and_not_judged():
    claims = (
        Claim("a above 1", lambda s: s["a"].above(1.0), ("a",)),
        Claim("a below 1", lambda s: s["a"].below(1.0), ("a",)),
        Claim("only on quick", lambda s: True, ("a",), presets=("quick",)),
        Claim("needs 5 seeds", lambda s: True, ("a",), min_seeds=5),
    )
    verdicts = judge(claims, _summary(a=2.0), "full", 3)
    assert [v["held"] for v in verdicts] == [True, False, None, None]
    assert [v["verdict"] for v in verdicts] == ["held", "not held", "not judged", "not judged"]
    assert verdicts[0]["numbers"]["a"]["mean"] == pytest.approx(2.0)
    assert "quick" in verdicts[2]["reason"] and "5 seeds" in verdicts[3]["reason"]


def test_a_claim_that_cannot_apply_says_why_instead_of_an_exception_name():
    def confounders(summary):
        if "gap" not in summary:
            raise NotApplicable("--data gives real images, which have no planted confounders")
        return summary["gap"].above(0)

    logged = []
    (verdict,) = judge(
        [Claim("the gap is positive", confounders, ("gap",))],
        _summary(a=1.0),
        "full",
        3,
        log=logged.append,
    )
    assert verdict["held"] is None and verdict["verdict"] == "not applicable"
    assert verdict["reason"] == (
        "not applicable: --data gives real images, which have no planted confounders"
    )
    assert "Error" not in verdict["reason"]
    assert logged == []  # not a defect: the claim said why its metric is absent


def test_a_claim_on_a_metric_the_run_did_not_produce_is_an_experiment_defect():
    logged = []
    claims = (
        Claim("reads a typo", lambda s: s["acc_mc"].mean > s["acc_sdt"].mean, ("acc_mc",)),
        Claim("lists a typo", lambda s: True, ("acc_mc", "acc_sdt")),
    )
    verdicts = judge(claims, _summary(acc_mc=0.9), "full", 3, log=logged.append)
    for verdict in verdicts:
        assert verdict["held"] is None and verdict["verdict"] == "defect"
        assert "'acc_sdt'" in verdict["reason"] and "did not produce" in verdict["reason"]
        assert "KeyError" not in verdict["reason"]
    assert len(logged) == 2 and all("experiment defect" in line for line in logged)
    # a claim on another preset is not judged, but the missing metric is still logged
    logged.clear()
    (verdict,) = judge(claims[1:], _summary(acc_mc=0.9), "smoke", 1, log=logged.append)
    assert verdict["verdict"] == "not judged" and "'acc_sdt'" in logged[0]


# --- summarize gets the summary the lab computed --------------------------------------------


def _run_fake(tmp_path, monkeypatch, summarize):
    import tests.lab.fake_experiments as fake

    monkeypatch.setattr(fake, "summarize", summarize, raising=False)
    return runs.execute(
        "fake", fake, resolve_config(fake, "quick"), preset="quick", seeds=(3, 1), out=tmp_path
    )


def test_summarize_receives_the_computed_summary_and_the_results_in_seed_order(
    tmp_path, monkeypatch
):
    seen = {}

    def summarize(cfg, summary, results, ctx):
        seen.update(summary=summary, results=results, seed=ctx.seed)
        return {"score_gap": summary["score"].high - summary["score"].low}

    path, state, error = _run_fake(tmp_path, monkeypatch, summarize)
    assert state == "done", error
    scores = [0.5 + 0.01 * 3, 0.5 + 0.01 * 1]
    assert [r["score"] for r in seen["results"]] == pytest.approx(scores)
    assert seen["summary"]["score"] == mean_interval(scores) and seen["seed"] == 3
    with pytest.raises(TypeError):  # read-only: the experiment cannot change the lab's numbers
        seen["summary"]["score"] = None
    summary = json.loads((path / "metrics.json").read_text())["summary"]
    expected = mean_interval(scores)
    assert summary["score_gap"]["mean"] == pytest.approx(expected.high - expected.low)


# --- heartbeat ------------------------------------------------------------------------------


def test_the_heartbeat_keeps_a_running_status_fresh_and_stops_with_the_run(tmp_path):
    run = Run.create(tmp_path, "exp", heartbeat_s=0.05)
    run.set_status("running", pid=os.getpid(), host=socket.gethostname())
    first = json.loads((run.path / "status.json").read_text())["heartbeat"]
    deadline = time.time() + 10
    while json.loads((run.path / "status.json").read_text())["heartbeat"] == first:
        assert time.time() < deadline, "no heartbeat written"
        time.sleep(0.02)
    assert run_state(run.path) == "running"
    run.set_status("done")
    time.sleep(0.2)  # no late beat turns it back into running
    assert json.loads((run.path / "status.json").read_text()) == {"state": "done"}


@pytest.mark.parametrize(
    ("host", "pid", "age", "state"),
    [
        ("another-host", 1, 1000.0, "interrupted"),  # its machine went away
        ("another-host", 1, 1.0, "running"),  # a fresh beat elsewhere: trust it
        ("this-host", "this-pid", 1000.0, "interrupted"),  # a reused process id
        ("this-host", "this-pid", 1.0, "running"),
    ],
)
def test_a_running_status_older_than_its_heartbeat_is_interrupted(tmp_path, host, pid, age, state):
    # this host and process are looked up here, not in the parameters: pytest-xdist workers
    # must collect the same test ids
    host = socket.gethostname() if host == "this-host" else host
    pid = os.getpid() if pid == "this-pid" else pid
    status = {"state": "running", "host": host, "pid": pid}
    status.update(heartbeat=time.time() - age, heartbeat_s=30.0)
    atomic_write_json(tmp_path / "status.json", status)
    assert run_state(tmp_path) == state


@pytest.mark.parametrize("status", [[1, 2], "running", {"state": ["running"]}, {"state": 3}])
def test_a_status_of_the_wrong_shape_is_unknown(tmp_path, status):
    atomic_write_json(tmp_path / "status.json", status)
    assert run_state(tmp_path) == "unknown"


@pytest.mark.parametrize(
    "heartbeat",
    [
        {"heartbeat": "NaN"},  # json.loads reads NaN and Infinity: a hand-made status can hold them
        {"heartbeat": "Infinity"},
        {"heartbeat": "-Infinity"},
        {"heartbeat": '"yesterday"'},
        {"heartbeat": "null"},
        {"heartbeat": "true"},
        {"heartbeat": "1" + "0" * 400},  # an integer no float can hold
        {"heartbeat": "1e300"},  # a time that never comes
        {"heartbeat_s": "NaN"},
        {"heartbeat_s": "Infinity"},
        {"heartbeat_s": "0"},
        {"heartbeat_s": "-30"},
    ],
    ids=lambda h: ",".join(f"{k}={v[:12]}" for k, v in h.items()),
)
def test_a_running_status_whose_heartbeat_cannot_age_is_unknown(tmp_path, heartbeat):
    # on another host, so only the heartbeat can tell: it would read as running for ever
    fields = {"heartbeat": "1.0", "heartbeat_s": "30.0", **heartbeat}
    text = ", ".join(f'"{k}": {v}' for k, v in fields.items())
    (tmp_path / "status.json").write_text(
        f'{{"state": "running", "host": "another-host", "pid": 1, {text}}}'
    )
    assert run_state(tmp_path) == "unknown"
    assert not run_folder.heartbeat_stale(json.loads((tmp_path / "status.json").read_text()))


@pytest.mark.parametrize("pid", [0, -1, 2**70, "123", True])
def test_a_process_id_no_process_can_have_is_unknown_never_probed(tmp_path, pid):
    # os.kill(0 or -1, 0) would probe a process group, or every process, and say "alive"
    status = {"state": "running", "host": socket.gethostname(), "pid": pid}
    status.update(heartbeat=time.time(), heartbeat_s=30.0)
    atomic_write_json(tmp_path / "status.json", status)
    assert run_state(tmp_path) == "unknown"


def test_a_status_without_a_heartbeat_is_judged_by_its_process(tmp_path):
    status = {"state": "running", "host": socket.gethostname(), "pid": os.getpid()}
    atomic_write_json(tmp_path / "status.json", status)
    assert run_state(tmp_path) == "running"
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    atomic_write_json(tmp_path / "status.json", {**status, "pid": process.pid})
    assert run_state(tmp_path) == "interrupted"
