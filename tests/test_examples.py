"""The examples in examples/: one for every family, written against the library (not the lab),
and, given a missing optional dependency, stopping first with one line that names the extra.

The examples themselves run when the documentation site is built (tests/docs/test_docs.py
builds it, and the gallery runs every script), so they are not run a second time here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
FAMILIES = (
    "attacks",
    "data",
    "detection",
    "encodings",
    "ensembles",
    "explain",
    "meta",
    "metric_learning",
    "models",
    "nlp",
    "semi_supervised",
    "tabular",
    "tuning",
)
# runs each example with some modules made unimportable, and reports how it stopped
RUNNER = """
import json, runpy, sys
blocked, paths = sys.argv[1].split(","), sys.argv[2:]
for name in blocked:
    sys.modules[name] = None
for path in paths:
    try:
        runpy.run_path(path, run_name="__main__")
        outcome = ["finished", ""]
    except SystemExit as stop:
        outcome = ["SystemExit", str(stop.code)]
    except Exception as error:
        outcome = [type(error).__name__, str(error)]
    print(json.dumps([path, *outcome]), flush=True)
"""


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return modules


def test_every_family_has_an_example_and_no_example_uses_the_lab():
    assert len(EXAMPLES) >= len(FAMILIES)
    used = set()
    for path in EXAMPLES:
        modules = _imports(path)
        assert not [m for m in modules if m.startswith("mltricks.lab")], path.name
        used |= {m.split(".")[1] for m in modules if m.startswith("mltricks.")}
        # a gallery script: a title docstring (title underlined with =) before any code
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and docstring.splitlines()[1].startswith("==="), path.name
    assert set(FAMILIES) <= used, f"families without an example: {set(FAMILIES) - used}"


def _stops(blocked: str, paths: list[Path]) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, blocked, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {Path(p).name: outcome for p, *outcome in map(json.loads, result.stdout.splitlines())}


@pytest.mark.slow
def test_without_matplotlib_every_example_stops_first_naming_the_lab_extra():
    stops = _stops("matplotlib", EXAMPLES)
    assert set(stops) == {p.name for p in EXAMPLES}
    for name, (kind, message) in stops.items():
        assert kind == "SystemExit", (name, kind, message)
        assert "pip install 'mltricks[lab]'" in message and "\n" not in message, name


@pytest.mark.slow
def test_without_transformers_the_nlp_example_stops_first_naming_the_nlp_extra():
    nlp = [p for p in EXAMPLES if "mltricks.nlp" in _imports(p)]
    assert nlp
    for name, (kind, message) in _stops("transformers", nlp).items():
        assert kind == "MissingExtraError", (name, kind, message)
        assert message.endswith("pip install 'mltricks[nlp]'") and "\n" not in message, name
