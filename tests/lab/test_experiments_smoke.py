"""Every registered experiment runs end to end in its smoke preset and writes a complete run."""

import json

import pytest

from mltricks.lab import registry, runs
from mltricks.lab.config import resolve_config


@pytest.mark.slow
@pytest.mark.xdist_group("smoke-runs")
@pytest.mark.parametrize("name", registry.names())
def test_smoke_preset_runs(name, smoke_runs):
    module = registry.load(name)
    seeds = module.PRESETS["smoke"].seeds
    (path,) = (smoke_runs / name).iterdir()  # run by `mltricks run ... --preset smoke`
    status = json.loads((path / "status.json").read_text())
    assert status["state"] == "done", status.get("error")
    config = json.loads((path / "config.json").read_text())
    assert config["preset"] == "smoke" and config["seeds"] == list(seeds)
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["summary"] and set(metrics["per_seed"]) == {str(s) for s in seeds}
    # a claim naming a metric the run does not produce could never be judged: every claim's
    # metrics exist in the smoke run (smoke presets keep the settings the claims are about)
    named = {metric for claim in module.CLAIMS for metric in claim.metrics}
    missing = sorted(named - set(metrics["summary"]))
    assert not missing, f"claims name metrics the smoke run does not produce: {missing}"
    claims = json.loads((path / "claims.json").read_text())
    assert len(claims) == len(module.CLAIMS) >= 1
    figures = json.loads((path / "figures.json").read_text())
    assert figures and all((path / f["file"]).stat().st_size > 0 for f in figures)


def test_every_experiment_belongs_to_a_seed_system():
    for name in registry.names():
        assert registry.load(name).SYSTEM in registry.SYSTEMS


def test_a_diverging_run_fails_in_one_line_naming_its_learning_rate(tmp_path):
    # issue 23 item 7: vae --set lr=1e10 ended in "all elements of input should be between 0
    # and 1" (its NaN pixels reached the Bernoulli term before any loss was checked)
    module = registry.load("vae")
    config = resolve_config(module, "smoke", assignments=["lr=1e10"])
    _, state, error = runs.execute("vae", module, config, preset="smoke", seeds=(0,), out=tmp_path)
    assert state == "failed" and "\n" not in error
    assert "FloatingPointError: VAE: the training loss became nan" in error
    assert error.endswith("(learning rate set by --set lr=1e+10)")
