"""The documentation site: built strictly, opened in headless Chromium, every internal link
resolving, and a broken example or cross-reference failing the build with its file and line.

Building runs every example of the gallery (``examples/``), so the examples are tested here and
nowhere else. The build is reused when ``site/`` is newer than every source it reads (``.ci/run``
builds it with ``make docs`` just before ``make test``); otherwise the test builds the site into a
temporary folder. CI sets MLTRICKS_REQUIRE_BROWSER=1, so a missing browser fails the browser test
instead of skipping it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from filelock import FileLock

from tests.lab.browser import Browser, find_chromium

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
# what the build reads: a build in site/ newer than all of these is the current one
SOURCES = ("mkdocs.yml", "docs", "examples", "src", "results", "CHANGELOG.md", "CONTRIBUTING.md")
CHROMIUM = find_chromium()
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            parts = file.relative_to(ROOT).parts
            # outputs of the build itself, and bytecode, are not sources
            if parts[:2] == ("docs", "generated") or "__pycache__" in parts:
                continue
            if file.is_file():
                newest = max(newest, file.stat().st_mtime)
    return newest


def _build(out: Path, config: Path = ROOT / "mkdocs.yml", cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site: ``site/`` when it is newer than every source, else a fresh build, made
    once per test session. Its tests share an xdist_group (``make test`` runs ``--dist
    loadgroup``), so one worker builds it; under another distribution the workers share the
    build through a lock."""
    if (SITE / "index.html").is_file() and (SITE / "index.html").stat().st_mtime > _newest_source():
        return SITE
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, shared by its workers
    out = base / "docs-site"
    with FileLock(str(base / "docs-site.lock")):
        if not (out / "index.html").is_file():
            result = _build(out)
            assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _ids(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


def _hook(name: str):
    """A module of docs/hooks/ (MkDocs loads them from their files; so do the tests)."""
    spec = importlib.util.spec_from_file_location(f"{name}_hook", ROOT / f"docs/hooks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_every_internal_link_resolves_and_the_pages_exist(site):
    broken = []
    ids: dict[Path, set[str]] = {}
    for page in _pages(site):
        html = page.read_text(encoding="utf-8")
        for link in re.findall(r'\b(?:href|src)="([^"]+)"', html):
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:", "//")):
                continue
            # the 404 page links from the site's root, as it is served from wherever it is missed
            base = site if parts.path.startswith("/") else page.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = _ids(target.read_text(encoding="utf-8"))
                if unquote(parts.fragment) not in ids[target]:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "links that do not resolve:\n" + "\n".join(broken[:50])
    # one page per family, per system, and per example, and the API of every family
    for family in _hook("api").FAMILIES:
        api = (site / "families" / family / "index.html").read_text(encoding="utf-8")
        module = importlib.import_module(f"mltricks.{family}")
        missing = [
            name
            for name in module.__all__
            if f'id="mltricks.{family}.{name}"' not in api and f'.{name}.{name}"' not in api
        ]
        assert not missing, f"{family}: names missing from the API reference: {missing}"
    assert len(list((site / "systems").glob("*/index.html"))) == 18
    examples = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    gallery = site / "generated" / "gallery"
    assert examples and all((gallery / name / "index.html").is_file() for name in examples)


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_the_search_index_holds_every_page(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert {"", "families/tuning/", "systems/mc-dropout/", "lab/"} <= locations
    text = " ".join(doc["text"] for doc in index["docs"])
    assert "lr_range_test" in text and "ClusterThenLabel" in text


@contextlib.contextmanager
def _serve(folder: Path):
    """``folder`` over HTTP on a free local port (the search's web worker needs http://)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_pages_render_in_a_real_browser(site, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("MLTRICKS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (MLTRICKS_REQUIRE_BROWSER=1) but was not found")
        pytest.skip("chromium is not installed (CI installs it: see .ci/run)")
    pages = {
        "home": "",
        "api": "families/tuning/",
        "gallery": "generated/gallery/plot_lr_range_test/",
    }
    with _serve(site) as base, Browser(CHROMIUM, width=1200) as browser:
        seen = {}
        for name, path in pages.items():
            browser.open(base + path)
            seen[name] = {
                "title": browser.evaluate("document.title"),
                "text": browser.evaluate("document.querySelector('article').innerText"),
                "images": browser.evaluate(
                    "Array.from(document.querySelectorAll('article img'))"
                    ".map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
                ),
                "errors": browser.errors(),
            }
            browser.screenshot(tmp_path / f"{name}.png")
    for name, page in seen.items():
        assert not page["errors"], f"{name}: {page['errors']}"
        assert "mltricks" in page["title"], name
        broken = [src for src, complete, width in page["images"] if not complete or width == 0]
        assert not broken, f"{name}: images that did not load: {broken}"
    assert "make demo" in seen["home"]["text"] and "make test" in seen["home"]["text"]
    api = seen["api"]["text"]
    assert "lr_range_test" in api and "LRRangeTestResult" in api and "Returns" in api
    assert seen["gallery"]["images"], "the gallery page shows no figure"
    assert "best lr" in seen["gallery"]["text"]  # the example's printed output


@pytest.mark.slow
def test_a_failing_example_and_a_broken_reference_fail_the_build_naming_file_and_line(tmp_path):
    """A copy of the site's configuration, on a page whose docstring names a missing function
    and on an example that raises: the strict build fails and names both places."""
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copytree(ROOT / "docs" / "hooks", project / "docs" / "hooks")
    (project / "docs" / "index.md").write_text("# Home\n\n::: broken\n")
    (project / "src").mkdir()
    (project / "src" / "broken.py").write_text(
        '"""A module."""\n\n\ndef thing():\n    """Use [the helper][broken.no_such_function]."""\n'
    )
    (project / "examples").mkdir()
    (project / "examples" / "README.md").write_text("# Examples\n")
    (project / "examples" / "plot_fails.py").write_text(
        '"""\nFails\n=====\n\nIt raises.\n"""\n\nx = 1\nraise RuntimeError("this example fails")\n'
    )
    config = (ROOT / "mkdocs.yml").read_text()
    config = config.split("\nnav:")[0] + "\nnav:\n  - index.md\n  - generated/gallery\n"
    # without the results hook, which has no page to fill here and would import the lab
    config = config.replace("  - docs/hooks/results.py\n", "")
    (project / "mkdocs.yml").write_text(config)
    result = _build(project / "site", project / "mkdocs.yml", cwd=project)
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert re.search(r"plot_fails\.py.*line 9", log), log[-3000:]
    assert "this example fails" in log
    assert re.search(r"broken\.py:\d+", log) and "broken.no_such_function" in log, log[-3000:]


def test_system_results_come_from_the_run_folders_through_the_report(tmp_path, monkeypatch):
    """Published runs replace a system page's static block: the report's rows for the system,
    its first column linked to the page, the rerun command and the figures."""
    from mltricks.lab import registry
    from mltricks.lab.cli import main

    hooks = _hook("results")
    monkeypatch.setattr(registry, "EXPERIMENTS", {"fake": "tests.lab.fake_experiments"})
    results = tmp_path / "results"
    assert main(["run", "fake", "--preset", "quick", "--out", str(results / "digits")]) == 0
    page = "systems/positional-encoding.md"
    text = hooks.system_results("Positional Encoding", "digits", page, root=results)
    assert "| [Positional Encoding](positional-encoding.md) | `fake` (quick)" in text
    assert "score is above 0.4" in text and "mltricks run fake" in text
    figure = re.search(r"!\[[^\]]*\]\((figures/digits/fake/[^)]+\.png)\)", text)
    assert figure, text
    assert hooks.system_results("Positional Encoding", "fashion-mnist", page, root=results) is None
    assert hooks.system_results("Autoencoder", "digits", "systems/autoencoder.md", results) is None
    overview = hooks.overview_table("digits", "results.md", root=results)
    assert "[Positional Encoding](systems/positional-encoding.md)" in overview
    assert "[Autoencoder](systems/autoencoder.md) | " in overview  # no run: still a row
    assert hooks.overview_table("fashion-mnist", "results.md", root=results) is None


def test_every_system_has_a_page_and_every_page_a_system():
    from mltricks.lab import registry

    hooks = _hook("results")
    assert set(hooks.SYSTEM_PAGES) == set(registry.SYSTEMS)
    pages = {f"systems/{p.name}" for p in (ROOT / "docs" / "systems").glob("*.md")}
    assert pages - {"systems/index.md"} == set(hooks.SYSTEM_PAGES.values())
    for system, page in hooks.SYSTEM_PAGES.items():
        text = (ROOT / "docs" / page).read_text()
        assert text.startswith(f"# {system}\n"), page
        for data_set in hooks.DATA_SETS:
            assert f"<!-- results:{data_set} -->" in text, (page, data_set)
        experiments = [n for n in registry.names() if registry.load(n).SYSTEM == system]
        for name in experiments:
            assert f"<!-- experiment:{name} -->" in text, (page, name)


@pytest.mark.slow
def test_the_code_of_the_getting_started_page_runs():
    """The page's Python blocks run as written, each in a fresh namespace."""
    page = (ROOT / "docs" / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "docs/getting-started.md", "exec"), namespace)
    assert 0.0 <= namespace["model"].score(namespace["X"], namespace["y"]) <= 1.0
