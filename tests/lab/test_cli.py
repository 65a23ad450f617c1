import json
import os

import pytest

from mltricks.lab import cli, registry
from mltricks.lab.cli import main, parse_seeds


@pytest.fixture
def fake(monkeypatch):
    experiments = {
        "fake": "tests.lab.fake_experiments",
        "fake-fails": "tests.lab.fake_experiments",
        **registry.EXPERIMENTS,
    }
    monkeypatch.setattr(registry, "EXPERIMENTS", experiments)
    return experiments


def _runs(root, name):
    return sorted((root / name).iterdir())


def test_list_names_every_experiment(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        assert name in out


def test_unknown_experiment_exits_2_and_lists_the_experiments(capsys):
    assert main(["run", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "lr-range-test" in err and "positional-encoding" in err


def test_bad_set_is_a_one_line_error(capsys, tmp_path, fake):
    assert main(["run", "fake", "--set", "epochs=abc", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "epochs=abc" in err and "int" in err
    assert main(["run", "fake", "--set", "epoch=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key" in err and "epochs (int)" in err and "rate (float)" in err
    assert not (tmp_path / "fake").exists()


def test_run_writes_the_run_folder(tmp_path, fake, capsys, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (1.25, 0.5, 0.25))
    code = main(
        [
            "run",
            "fake",
            "--preset",
            "quick",
            "--set",
            "rate=0.7",
            "--set",
            "sleep=0.25",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    (run,) = _runs(tmp_path, "fake")
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "metrics.json",
        "claims.json",
        "status.json",
        "log.txt",
        "line.png",
        "figures.json",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["rate"] == 0.7 and config["seeds"] == [0, 1]
    assert config["command"] == (
        "mltricks run fake --preset quick --seeds 0,1 --set rate=0.7 --set sleep=0.25"
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["per_seed"]["1"]["score"] == pytest.approx(0.71)
    assert metrics["per_seed"]["0"]["series"] == [1, 2, 3]
    score = metrics["summary"]["score"]
    assert score["mean"] == pytest.approx(0.705) and score["low"] < 0.705 < score["high"]
    claims = json.loads((run / "claims.json").read_text())
    assert [c["held"] for c in claims] == [True, None]
    assert "full" in claims[1]["reason"]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done"
    # wall time, CPU time of the process and the machine's load, for runs on shared machines:
    # two seeds sleep 0.25 s each, which takes wall time and no CPU time
    assert status["duration_s"] >= 0.5
    assert status["cpu_s"] <= status["duration_s"] - 0.4
    assert status["load_average"] == 1.25


def test_full_preset_judges_and_a_false_claim_shows_false(tmp_path, fake):
    assert main(["run", "fake", "--preset", "full", "--out", str(tmp_path)]) == 0
    (run,) = _runs(tmp_path, "fake")
    claims = json.loads((run / "claims.json").read_text())
    assert [c["held"] for c in claims] == [True, False]
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 3


def test_run_all_goes_on_after_a_failure_and_names_it(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setattr(
        registry,
        "EXPERIMENTS",
        {"fake-fails": "tests.lab.fake_experiments", "fake": "tests.lab.fake_experiments"},
    )
    code = main(["run", "all", "--preset", "smoke", "--set", "fail=true", "--out", str(tmp_path)])
    assert code == 1
    assert "fake-fails" in capsys.readouterr().err
    # the same failing config ran for both; both are recorded as failed with the error
    for name in ("fake-fails", "fake"):
        (run,) = _runs(tmp_path, name)
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "failed" and "fails on purpose" in status["error"]
        assert "RuntimeError" in (run / "log.txt").read_text()


def test_run_all_reports_the_others_when_one_raises(tmp_path, monkeypatch, capsys):
    import tests.lab.fake_experiments as fake_module

    original = fake_module.run
    calls = []

    def flaky(cfg, ctx):
        calls.append(ctx.run.folder.parent.name)
        if ctx.run.folder.parent.name == "b":
            raise ValueError("b breaks")
        return original(cfg, ctx)

    monkeypatch.setattr(fake_module, "run", flaky)
    monkeypatch.setattr(
        registry, "EXPERIMENTS", {name: "tests.lab.fake_experiments" for name in ("a", "b", "c")}
    )
    assert main(["run", "all", "--preset", "smoke", "--out", str(tmp_path)]) == 1
    assert calls == ["a", "b", "c"]
    states = {
        n: json.loads(next((tmp_path / n).iterdir()).joinpath("status.json").read_text())["state"]
        for n in "abc"
    }
    assert states == {"a": "done", "b": "failed", "c": "done"}
    assert "failed experiments: b" in capsys.readouterr().err


def test_data_flag_checks(tmp_path, fake, capsys):
    assert main(["run", "fake", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
    assert (
        main(["run", "positional-encoding", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    )
    assert "read no real data set" in capsys.readouterr().err


def test_parse_seeds():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("3,1,1") == (3, 1)
    assert parse_seeds("0-2,7") == (0, 1, 2, 7)
    for bad in ("a", "5-2", "", "-1"):
        with pytest.raises(cli.UsageError, match="--seeds"):
            parse_seeds(bad)
    assert len(parse_seeds(f"0-{cli.MAX_SEEDS - 1}")) == cli.MAX_SEEDS
    assert parse_seeds(f"{cli.MAX_SEED}") == (cli.MAX_SEED,)
    # more seeds than the bound, even as a huge range, or a seed past NumPy's reach
    for bad in (f"0-{cli.MAX_SEEDS}", "0-999999", "0-499,500-1000", f"{cli.MAX_SEED + 1}"):
        with pytest.raises(cli.UsageError, match="at most"):
            parse_seeds(bad)
    # repeated seeds count once
    assert len(parse_seeds(f"0-{cli.MAX_SEEDS - 1},0-{cli.MAX_SEEDS - 1}")) == cli.MAX_SEEDS


def test_report_command(tmp_path, fake, capsys):
    assert main(["run", "fake", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").exists()
    assert main(["report", str(tmp_path), "--markdown"]) == 0
    assert "| system |" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2


def test_experiment_options_apply_where_the_config_has_the_field(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "OPTIONS", {"--label": "label"})
    monkeypatch.setattr(
        registry,
        "EXPERIMENTS",
        {
            "fake": "tests.lab.fake_experiments",
            "positional-encoding": registry.EXPERIMENTS["positional-encoding"],
        },
    )
    code = main(
        [
            "run",
            "fake",
            "positional-encoding",
            "--preset",
            "smoke",
            "--label",
            "hello",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    (run,) = (tmp_path / "fake").iterdir()
    config = json.loads((run / "config.json").read_text())
    # the flag is recorded as given, so the rerun command uses it too
    assert config["config"]["label"] == "hello" and config["command"].endswith(" --label hello")
    (other,) = (tmp_path / "positional-encoding").iterdir()
    assert "label" not in json.loads((other / "config.json").read_text())["command"]
    assert main(["run", "positional-encoding", "--label", "x", "--out", str(tmp_path)]) == 2
    assert "--label" in capsys.readouterr().err
