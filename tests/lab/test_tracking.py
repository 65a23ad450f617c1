"""``mltricks run ... --track tensorboard|mlflow``: what the trackers hold, read back with the
tools' own readers (TensorBoard's event accumulator, the MLflow client) and compared with the
run folder's metrics.json."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mltricks._utils.extras import is_installed
from mltricks.lab import cli, engine, registry, tracking

NAME = "tracked-fake"
EPOCHS = 3


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(registry.EXPERIMENTS, NAME, "tests.lab.tracked_experiment")


def _run(tmp_path: Path, *flags: str) -> tuple[int, Path | None]:
    out = tmp_path / "runs"
    args = ["run", NAME, "--preset", "smoke", "--out", str(out), "--no-progress", *flags]
    code = cli.main(args)
    folders = sorted((out / NAME).iterdir()) if (out / NAME).exists() else []
    return code, (folders[-1] if folders else None)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


needs_tensorboard = pytest.mark.skipif(
    not is_installed("tensorboard"), reason="tensorboard is not installed (mltricks[tensorboard])"
)
needs_mlflow = pytest.mark.skipif(
    not is_installed("mlflow"), reason="mlflow is not installed (mltricks[mlflow])"
)


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def _scalars(events, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _hparams(folder: Path) -> dict:
    """The hyperparameters of the one hparams session under ``folder`` (TensorBoard's format)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    # add_hparams writes a session of its own in a sub-folder (Accelerate adds hparams.yml in
    # another one)
    (session,) = {p.parent for p in folder.glob("*/events.out.tfevents.*")}
    content = _events(session).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    return {
        key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for key, value in data.session_start_info.hparams.items()
    }


@needs_tensorboard
@pytest.mark.slow
def test_tensorboard_holds_each_seeds_config_epochs_metrics_and_figures(tmp_path, fake):
    code, run = _run(tmp_path, "--track", "tensorboard", "--set", "lr=0.25")
    assert code == 0 and run is not None
    metrics = _metrics(run)
    for seed in (0, 1):
        folder = run / "tensorboard" / f"seed-{seed}"
        events = _events(folder)
        expected = metrics["per_seed"][str(seed)]
        # every epoch row of both fit calls, numbered per desc from 1
        for tag, values in (("train/train_loss", expected["train_loss"]),
                            ("train/val_accuracy", expected["val_accuracy"]),
                            ("tune/train_loss", expected["tune_loss"])):  # fmt: skip
            logged = _scalars(events, tag)
            assert [step for step, _ in logged] == list(range(1, len(values) + 1))
            assert [v for _, v in logged] == pytest.approx(values, rel=1e-6)
        assert len(_scalars(events, "train/lr")) == EPOCHS
        # final metrics under their own names; booleans as 0/1; lists left out
        for key in ("accuracy", "loss"):
            assert _scalars(events, key) == [(0, pytest.approx(expected[key], rel=1e-6))]
        assert _scalars(events, "learned") == [(0, float(expected["learned"]))]
        assert "train_loss" not in events.Tags()["scalars"]
        # the config as hyperparameters
        hparams = _hparams(folder)
        assert hparams["lr"] == 0.25 and hparams["epochs"] == EPOCHS
        assert hparams["widths"] == "[4, 2]" and hparams["seed"] == seed
        assert hparams["experiment"] == NAME and hparams["run_folder"] == str(run)
        # the per-seed figure only where it was saved (the first seed)
        images = events.Tags()["images"]
        assert images == (["figures/loss"] if seed == 0 else [])
    image = _events(run / "tensorboard" / "seed-0").Images("figures/loss")[0]
    assert image.width > 100 and image.height > 50
    summary = _events(run / "tensorboard" / "summary")
    for key in ("accuracy", "best_accuracy"):
        for end in ("mean", "low", "high"):
            value = metrics["summary"][key][end]
            if value is not None:
                assert _scalars(summary, f"{key}/{end}") == [(0, pytest.approx(value, rel=1e-6))]
    assert summary.Tags()["images"] == ["figures/accuracy-over-seeds"]


@needs_tensorboard
def test_a_failing_seed_closes_its_tracker_run(tmp_path, fake):
    code, run = _run(tmp_path, "--track", "tensorboard", "--set", "fail_second_seed=true")
    assert code == 1 and run is not None
    assert engine._listeners.get() == ()  # the failed seed's listener is gone
    assert _scalars(_events(run / "tensorboard" / "seed-0"), "accuracy")
    assert _events(run / "tensorboard" / "seed-1").Tags()["scalars"] == []


@needs_mlflow
@pytest.mark.slow
def test_mlflow_holds_each_seed_in_a_sqlite_store_under_out(tmp_path, fake, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, run = _run(tmp_path, "--track", "mlflow")
    assert code == 0 and run is not None
    assert "MLFLOW_TRACKING_URI" not in __import__("os").environ  # put back as it was
    metrics = _metrics(run)
    store = tmp_path / "runs" / "mlflow.db"
    assert store.exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name(f"mltricks/{NAME}")
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(tmp_path)
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(found) == {f"{run.name}/seed-0", f"{run.name}/seed-1", f"{run.name}/summary"}
    for seed in (0, 1):
        logged = found[f"{run.name}/seed-{seed}"]
        expected = metrics["per_seed"][str(seed)]
        assert logged.info.status == "FINISHED"
        assert logged.data.tags["mltricks.run_folder"] == str(run)
        assert logged.data.params["lr"] == "0.5" and logged.data.params["seed"] == str(seed)
        assert logged.data.metrics["accuracy"] == pytest.approx(expected["accuracy"])
        assert logged.data.metrics["learned"] == float(expected["learned"])
        history = client.get_metric_history(logged.info.run_id, "train/train_loss")
        assert [m.step for m in history] == list(range(1, EPOCHS + 1))
        assert [m.value for m in history] == pytest.approx(expected["train_loss"])
        artifacts = [a.path for a in client.list_artifacts(logged.info.run_id, "figures")]
        assert artifacts == (["figures/loss.png"] if seed == 0 else [])
    summary = found[f"{run.name}/summary"]
    assert summary.data.metrics["best_accuracy/mean"] == pytest.approx(
        metrics["summary"]["best_accuracy"]["mean"]
    )
    assert summary.data.params["seeds"] == "[0, 1]"


def test_mlflow_store_is_under_out_unless_mlflow_tracking_uri_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.mlflow_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.mlflow_tracking_uri(tmp_path) == "http://127.0.0.1:5000"


@pytest.mark.parametrize("kind", tracking.TRACKERS)
def test_track_without_its_extra_is_one_line_and_exit_2(tmp_path, fake, monkeypatch, capsys, kind):
    monkeypatch.setitem(sys.modules, kind, None)  # as if the extra were not installed
    code, run = _run(tmp_path, "--track", kind)
    assert code == 2 and run is None
    assert capsys.readouterr().err.splitlines() == [
        f"mltricks: error: --track {kind} needs {kind} (not installed): "
        f"pip install 'mltricks[{kind}]'"
    ]


def test_without_a_tracker_nothing_is_logged(tmp_path, fake):
    with pytest.raises(ValueError, match="kind must be one of tensorboard, mlflow; got 'wandb'"):
        tracking.Tracker("wandb", out=tmp_path)
    code, run = _run(tmp_path)
    assert code == 0 and not (run / "tensorboard").exists()
    assert not (tmp_path / "runs" / "mlflow.db").exists()


# --- concurrency and failures: a tracker never fails or loses a run --------------------------

ROOT = Path(__file__).resolve().parents[2]
# `mltricks run tracked-fake ...` that says it is ready once its libraries are loaded and waits
# for the start signal: two of them open a fresh store at the same moment
CONCURRENT_RUN = """
import sys, time
from pathlib import Path
import mlflow
from mltricks.lab import cli, registry
registry.EXPERIMENTS["tracked-fake"] = "tests.lab.tracked_experiment"
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
sys.exit(cli.main(sys.argv[3:]))
"""


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@needs_mlflow
@pytest.mark.slow
def test_two_mlflow_runs_started_together_share_a_fresh_store(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out, go = tmp_path / "runs", tmp_path / "go"
    argv = ["run", NAME, "--preset", "smoke", "--seeds", "0", "--out", str(out), "--no-progress"]
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    ready = [tmp_path / f"ready-{k}" for k in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN, str(flag), str(go), *argv, "--track", "mlflow"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for flag in ready
    ]
    try:
        _wait_for(lambda: all(f.exists() for f in ready) or any(p.poll() for p in processes))
        go.touch()
        outputs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        for process in processes:
            process.kill()
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert not any("mltricks: warning" in output for output in outputs), outputs  # all tracked
    # the store opens (MLflow checks its schema: a half-migrated one is refused) and holds both
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"mltricks/{NAME}")
    logged = client.search_runs([experiment.experiment_id])
    folders = sorted(p.name for p in (out / NAME).iterdir())
    expected = [f"{folder}/{label}" for folder in folders for label in ("seed-0", "summary")]
    assert sorted(r.info.run_name for r in logged) == expected
    assert {r.info.status for r in logged} == {"FINISHED"}


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mltricks: warning:")]


def _assert_finished_with_tracking_warning(run: Path, err: str, *words: str) -> None:
    """The run is done with every result written; the tracker failure is one line on the
    console, in log.txt and in status.json, and nothing else was printed about it."""
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done"
    metrics = _metrics(run)
    assert set(metrics["per_seed"]) == {"0", "1"} and "best_accuracy" in metrics["summary"]
    assert json.loads((run / "claims.json").read_text())[0]["verdict"] == "held"
    (line,) = _warnings(err)
    assert "Traceback" not in err and "Exception in thread" not in err, err
    for text in (line, status["tracking_error"]):
        for word in words:
            assert word in text, text
    logged = [x for x in (run / "log.txt").read_text().splitlines() if "tracking stopped" in x]
    assert len(logged) == 1 and status["tracking_error"] in logged[0]


@needs_tensorboard
def test_a_full_disk_under_tensorboard_is_a_warning_of_a_finished_run(
    tmp_path, fake, monkeypatch, capfd
):
    from tensorboard.compat.tensorflow_stub.io import gfile

    def full(self, filename, content, mode):  # only TensorBoard's event files: the run fits
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gfile.LocalFileSystem, "_write", full)
    printed = []  # what Python would print for an exception in a thread (the writer's)
    monkeypatch.setattr(threading, "excepthook", printed.append)
    code, run = _run(tmp_path, "--track", "tensorboard")
    assert code == 0 and run is not None
    assert printed == []
    _assert_finished_with_tracking_warning(
        run, capfd.readouterr().err, "--track tensorboard", "No space left on device"
    )


@needs_mlflow
@pytest.mark.slow
def test_an_artifact_store_that_breaks_during_the_run_is_a_warning_of_a_finished_run(
    tmp_path, fake, monkeypatch, capfd
):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "runs"
    checked = tracking.Tracker.__init__

    def check_then_break(self, *args, **kwargs):  # `echo x > R/mlartifacts`, after the check
        checked(self, *args, **kwargs)
        (out / "mlartifacts").write_text("x\n")

    monkeypatch.setattr(tracking.Tracker, "__init__", check_then_break)
    code, run = _run(tmp_path, "--track", "mlflow")
    assert code == 0 and run is not None
    _assert_finished_with_tracking_warning(
        run, capfd.readouterr().err, "--track mlflow", "figure loss.png", "mlartifacts"
    )
    assert "MLFLOW_TRACKING_URI" not in os.environ  # put back as it was
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    (logged,) = client.search_runs(
        [client.get_experiment_by_name(f"mltricks/{NAME}").experiment_id]
    )
    assert logged.info.run_name == f"{run.name}/seed-0" and logged.info.status == "FAILED"
    assert logged.data.metrics["accuracy"] == pytest.approx(
        _metrics(run)["per_seed"]["0"]["accuracy"]
    )


def _store_faults(out: Path, monkeypatch) -> dict:
    def folder():
        (out / "mlflow.db").mkdir(parents=True)

    def not_a_database():
        out.mkdir()
        (out / "mlflow.db").write_bytes(b"my notes, not a database\n" * 10)

    def read_only():  # what a user who may not write there sees (tests run as root)
        out.mkdir()
        (out / "mlflow.db").touch()
        real = os.access
        monkeypatch.setattr(
            tracking.os, "access", lambda p, mode: real(p, mode) and Path(p).name != "mlflow.db"
        )

    def artifacts_not_a_folder():
        out.mkdir()
        (out / "mlartifacts").write_text("x\n")

    return {
        "folder named mlflow.db": (folder, "is a folder, not an SQLite file"),
        "not a database": (not_a_database, "is not an SQLite database"),
        "read-only store": (read_only, "is read-only"),
        "artifacts not a folder": (artifacts_not_a_folder, "mlartifacts' is not a folder"),
        "garbage uri": (
            lambda: monkeypatch.setenv("MLFLOW_TRACKING_URI", "not a uri"),
            "MLFLOW_TRACKING_URI='not a uri' cannot be used: MlflowException: The filesystem",
        ),
        "unknown scheme": (
            lambda: monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://bar"),
            "MLFLOW_TRACKING_URI='foo://bar': unknown scheme 'foo://'",
        ),
    }


STORE_FAULTS = list(_store_faults(Path(), None))


@needs_mlflow
@pytest.mark.parametrize("fault", STORE_FAULTS)
def test_a_store_mlflow_cannot_use_is_refused_before_the_run_in_one_line(
    tmp_path, fake, monkeypatch, capsys, fault
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "runs"
    make, words = _store_faults(out, monkeypatch)[fault]
    make()
    started = time.monotonic()
    code, run = _run(tmp_path, "--track", "mlflow")
    assert time.monotonic() - started < 30  # MLflow alone retries a folder for two minutes
    assert code == 2 and run is None
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith("mltricks: error: --track mlflow:")
    assert words in err, err
