"""Every file the code, the tests and the front pages cite is in the repository: no reference to
the original request's files outside it, and every ``docs/...`` path they name exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITING = ("src", "tests", "benchmarks", "scripts", "examples", ".ci")
FRONT = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "Makefile", "pyproject.toml", "mkdocs.yml")
# the request's files that lived outside the repository (spelled in parts, so this file does not
# cite them itself)
OUTSIDE = re.compile("|".join(("SEED" + ".md", "SEED" + "-NOTES", "DESIGN" + ".md")))
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]*[\w/]")


def _files() -> list[Path]:
    files = [ROOT / name for name in FRONT]
    for folder in CITING:
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file()
            and p.suffix in {".py", ".md", ".txt", ""}
            and "__pycache__" not in p.parts
            and ".egg-info" not in str(p)
        ]
    return files


def test_nothing_cites_the_files_outside_the_repository():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not found, "cite the documentation's pages instead:\n" + "\n".join(found)


def test_every_cited_docs_path_exists():
    missing = []
    for path in _files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            for cited in DOCS_PATH.findall(line):
                # docs/generated is built by the gallery, not kept; a figure a script under
                # scripts/ writes is that script's output, not a citation
                output = path.parts[len(ROOT.parts)] == "scripts" and cited.startswith(
                    "docs/figures/"
                )
                if (
                    not cited.startswith("docs/generated")
                    and not output
                    and not (ROOT / cited).exists()
                ):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {cited}")
    assert not missing, "\n".join(missing)


def test_the_checks_catch_a_citation(tmp_path):
    assert OUTSIDE.search("see " + "SEED" + ".md") and not OUTSIDE.search("see docs/systems/")
    assert DOCS_PATH.findall("(docs/systems/mimo.md):") == ["docs/systems/mimo.md"]
    assert DOCS_PATH.findall("tests/docs/test_docs.py") == []
