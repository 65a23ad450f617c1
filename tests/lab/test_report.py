import json
import re

from smallml.lab import registry
from smallml.lab.cli import main
from smallml.lab.report import render


def test_report_escapes_config_and_shows_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "EXPERIMENTS", {"fake": "tests.lab.fake_experiments"})
    assert main(["run", "fake", "--preset", "quick", "--out", str(tmp_path)]) == 0
    page = render(tmp_path)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # offline: nothing is fetched from another host
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all((tmp_path / src).is_file() for src in images)
    # the claims table has a row for every SEED.md system
    for system in registry.SYSTEMS:
        assert system.replace("(", "(") in page or system in page
    assert 'class="held"' in page and 'class="not-judged"' in page


def test_failed_and_interrupted_runs_are_shown(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "EXPERIMENTS", {"fake": "tests.lab.fake_experiments"})
    assert (
        main(["run", "fake", "--preset", "smoke", "--set", "fail=true", "--out", str(tmp_path)])
        == 1
    )
    page = render(tmp_path)
    assert "fails on purpose" in page and "state-failed" in page
    (run,) = (tmp_path / "fake").iterdir()
    status = json.loads((run / "status.json").read_text())
    status.update(state="running", pid=2**22 + 12345)
    (run / "status.json").write_text(
        json.dumps({**status, "host": __import__("socket").gethostname()})
    )
    assert "interrupted" in render(tmp_path)
