import html
import json
import re

from mltricks.lab import registry
from mltricks.lab.cli import main
from mltricks.lab.report import render


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
    # the claims table has a row for every system, its name escaped in the first cell
    first_cells = re.findall(r'<tr data-experiment="[^"]*"><td>([^<]*)</td>', page)
    assert set(first_cells) == {html.escape(system) for system in registry.SYSTEMS}
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


def test_markdown_table_lists_every_system_with_earlier_numbers_and_run_time(tmp_path, monkeypatch):
    from mltricks.lab.report import markdown_table

    monkeypatch.setattr(registry, "EXPERIMENTS", {"fake": "tests.lab.fake_experiments"})
    assert main(["run", "fake", "--preset", "quick", "--out", str(tmp_path)]) == 0
    table = markdown_table(tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert {row.split(" | ")[0][2:] for row in rows} == set(registry.SYSTEMS)
    assert all(row.count(" | ") == 6 for row in rows)  # 7 cells, none broken by a "|"
    assert "| `fake` (quick) |" in table and " min (CPU " in table
    assert "31% -> 84% on a 2-way task" in table  # the original Reptile number (its page)
    assert "Total run time of these 1 runs" in table
    # every earlier result belongs to a system
    assert set(registry.EARLIER_RESULTS) <= set(registry.SYSTEMS)


def test_a_run_on_a_data_set_names_its_folder_in_both_tables(tmp_path, monkeypatch):
    from mltricks.lab.report import markdown_table, write_report

    monkeypatch.setattr(registry, "EXPERIMENTS", {"fake": "tests.lab.fake_experiments"})
    data = tmp_path / "my-images"
    data.mkdir()
    out = tmp_path / "runs"
    assert main(["run", "fake", "--preset", "quick", "--out", str(out), "--data", str(data)]) == 0
    assert "| `fake` (quick, --data my-images) |" in markdown_table(out)
    assert "fake</a> (quick, --data my-images)</td>" in write_report(out).read_text()
