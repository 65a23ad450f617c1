"""benchmarks/run.py copies each table into docs/benchmarks.md between its topic's marker comments."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_table_replaces_only_its_own_block(tmp_path):
    run = _runner()
    readme = tmp_path / "benchmarks.md"
    before = (
        "# x\n\n<!-- bench:a -->\nold a\nmore old a\n<!-- /bench:a -->\n\ntext between\n\n"
        "<!-- bench:ab -->\nold ab\n<!-- /bench:ab -->\n"
    )
    readme.write_text(before)
    assert run.update_page("a", "new a\n\n", readme)
    assert readme.read_text() == before.replace("old a\nmore old a", "new a")
    assert run.update_page("a", "newer a", readme)  # the markers stay: it runs again
    assert "newer a" in readme.read_text() and "old ab" in readme.read_text()
    assert not run.update_page("missing", "x", readme)
    assert not run.update_page("a", "x", tmp_path / "absent.md")


def test_every_benchmark_has_a_block_in_the_docs_and_tables_state_machine_and_ratios():
    run = _runner()
    assert run.PAGE == ROOT / "docs" / "benchmarks.md"
    text = run.PAGE.read_text()
    for file in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        topic = file.stem.removeprefix("bench_")
        block = re.search(rf"<!-- bench:{topic} -->\n(.*?)\n<!-- /bench:{topic} -->", text, re.S)
        assert block, topic
    footer = run.footer(12.0)
    assert "Machine:" in footer and "ratios" in footer and ("GPU" in footer)
