"""``mltricks run ... --track tensorboard|mlflow``: what the trackers hold, read back with the
tools' own readers (TensorBoard's event accumulator, the MLflow client) and compared with the
run folder's metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mltricks._utils.extras import is_installed
from mltricks.lab import cli, registry, tracking

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
    assert tracking._sessions == []
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


def test_without_a_tracker_nothing_is_logged_and_the_module_is_unchanged(tmp_path, fake):
    tracking.log_epoch({"train_loss": 1.0}, "train")  # no tracker run open: a no-op
    module = registry.load(NAME)
    with pytest.raises(ValueError, match="kind must be one of tensorboard, mlflow; got 'wandb'"):
        tracking.tracked(module, "wandb", name=NAME, out=tmp_path)
    code, run = _run(tmp_path)
    assert code == 0 and not (run / "tensorboard").exists()
    assert not (tmp_path / "runs" / "mlflow.db").exists()
