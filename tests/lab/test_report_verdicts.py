"""A first run that tells the truth: the report opens with its verdicts, shows the published
full runs beside (never as) its own, and a network below its baseline says so."""

import json
import re

from mltricks.lab import cli, registry, report
from mltricks.lab.cli import main
from mltricks.lab.experiment import Baseline
from mltricks.lab.published import condense, data_set_of, published_claim
from mltricks.lab.report import render


def _fake(monkeypatch):
    monkeypatch.setattr(registry, "EXPERIMENTS", {"fake": "tests.lab.fake_experiments"})


def test_the_report_opens_with_counts_and_a_line_per_system(tmp_path, monkeypatch):
    _fake(monkeypatch)
    monkeypatch.setattr(report, "load", lambda: {"sets": {}})
    assert main(["run", "fake", "--preset", "quick", "--out", str(tmp_path)]) == 0
    page = render(tmp_path)
    (counts,) = re.findall(r'<p id="counts">(.*?)</p>', page)
    # the fake experiment's two claims (one judged on quick) and 17 systems without a run
    assert "1 held, 1 not judged, 17 no run" in counts
    assert "1 of 18 systems with a verdict" in counts
    systems = re.findall(r"<li><b>([^<]*)</b>: ([^<]*)</li>", page)
    assert len(systems) == len(registry.SYSTEMS)
    assert ("Positional Encoding", "1 held, 1 not judged") in systems
    assert page.index('id="counts"') < page.index('id="claims"')  # the first thing read


def test_the_published_full_run_stands_beside_the_claim_never_as_its_verdict(tmp_path, monkeypatch):
    _fake(monkeypatch)
    snapshot = {
        "sets": {
            "digits": {
                "fake": {
                    "run": "digits/fake/20261207-000000",
                    "command": "mltricks run fake --preset full",
                    "finished": "2026-12-07T10:00:00+00:00",
                    "claims": [{"text": "score is above 10", "verdict": "not held"}],
                }
            }
        }
    }
    monkeypatch.setattr(report, "load", lambda: snapshot)
    assert main(["run", "fake", "--preset", "quick", "--out", str(tmp_path)]) == 0
    page = render(tmp_path)
    rows = re.findall(r'<tr data-experiment="fake">.*?</tr>', page)
    (row,) = [r for r in rows if "score is above 10" in r]
    assert '<td class="not-judged">not judged</td>' in row  # this run's verdict
    assert "not held (results/digits/fake/20261207-000000, 2026-12-07" in row
    assert "mltricks run fake --preset full" in row
    assert "published full run: 1 not held" in page
    # a run on another data set has no published run to show
    assert data_set_of({"data": "/usr/share/datasets/fashion-mnist"}) == "fashion-mnist"
    assert published_claim(snapshot, "fashion-mnist", "fake", "score is above 10") is None


def test_the_snapshot_condenses_the_latest_finished_run_of_each_data_set(tmp_path, monkeypatch):
    _fake(monkeypatch)
    results = tmp_path / "results"
    out = results / "digits"
    assert main(["run", "fake", "--preset", "smoke", "--set", "fail=true", "--out", str(out)]) == 1
    assert main(["run", "fake", "--preset", "full", "--out", str(out)]) == 0
    snapshot = condense(results)
    (run,) = snapshot["sets"]["digits"].values()
    assert run["preset"] == "full" and run["command"].startswith("mltricks run fake")
    verdicts = {c["text"]: c["verdict"] for c in run["claims"]}
    assert verdicts == {"score is above 0.4": "held", "score is above 10": "not held"}
    assert json.loads(json.dumps(snapshot)) == snapshot  # what published.json holds


def test_a_network_below_its_baseline_says_so_in_one_line_at_the_end(tmp_path, monkeypatch, capsys):
    _fake(monkeypatch)
    import tests.lab.fake_experiments as fake

    below = Baseline("score", "epochs", "the fake network", "--set rate=5 closes it", False)
    monkeypatch.setattr(fake, "BASELINES", (below,), raising=False)
    assert main(["run", "fake", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert line == (
        "mltricks: warning: fake: the fake network reached score = 0.5, below epochs = 2 on the "
        "same data; --set rate=5 closes it"
    )
    (run,) = (tmp_path / "fake").iterdir()
    assert json.loads((run / "status.json").read_text())["warnings"] == [line.split(": ", 3)[3]]
    assert "Warning: the fake network reached" in render(tmp_path)
    # above its baseline, or a data-only check on the bundled data: nothing is said
    above = Baseline("epochs", "score", "the fake network", "", False)
    data_only = Baseline("score", "epochs", "the fake network", "", True)
    monkeypatch.setattr(fake, "BASELINES", (above, data_only))
    assert main(["run", "fake", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_fix_a_gap_names_leaves_out_the_preset_the_run_is_on():
    from mltricks.lab.runs import _fix_from

    full = Baseline("a", "b", "net", "more epochs with --set epochs=N", preset="full")
    assert _fix_from(full, "smoke") == "--preset full, or more epochs with --set epochs=N"
    assert _fix_from(full, "quick") == "--preset full, or more epochs with --set epochs=N"
    assert _fix_from(full, "full") == "more epochs with --set epochs=N"  # already on it
    quick = Baseline("a", "b", "net", "--set epochs=20", preset="quick")
    assert _fix_from(quick, "smoke") == "--preset quick, or --set epochs=20"
    assert _fix_from(quick, "quick") == "--set epochs=20"
    assert _fix_from(quick, "full") == "--set epochs=20"
    no_preset = Baseline("a", "b", "net", "--set steps=2000")
    assert _fix_from(no_preset, "smoke") == "--set steps=2000"
    assert _fix_from(full, None) == "more epochs with --set epochs=N"  # no preset known
    # every experiment's baseline names a preset the lab has, and a setting besides it
    for name in registry.names():
        for baseline in getattr(registry.load(name), "BASELINES", ()):
            assert baseline.preset in (None, *registry.PRESET_NAMES), (name, baseline)
            assert baseline.fix and not baseline.fix.startswith("--preset"), (name, baseline)


def test_list_names_each_experiments_data_formats(capsys):
    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["cluster-then-label"].endswith("--data: mnist, cifar10")
    assert lines["lr-range-test"].endswith("--data: none")
    assert set(lines) == set(registry.names())


def test_run_all_with_data_keeps_the_experiments_that_read_its_format(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")  # an MNIST-format folder, by name
    modules = {name: registry.load(name) for name in registry.names()}
    kept = cli._reading(modules, tmp_path)
    reads_mnist = {n for n, m in modules.items() if "mnist" in getattr(m, "DATA_FORMATS", ())}
    assert set(kept) == reads_mnist
    assert {"reptile", "mc-dropout", "fgsm"} <= set(kept)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("--data holds an MNIST-format IDX folder")
    assert "lr-range-test" in line and "reptile" not in line
