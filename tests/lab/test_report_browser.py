"""The report built from smoke runs of every experiment, opened in headless Chromium.

CI installs Debian's chromium first (.ci/run) and sets MLTRICKS_REQUIRE_BROWSER=1, so there a
missing browser fails the test instead of skipping it.
"""

import json
import os

import pytest

from mltricks.lab import registry
from mltricks.lab.cli import main
from mltricks.lab.report import write_report
from tests.lab.browser import Browser, find_chromium

CHROMIUM = find_chromium()


def _require_chromium():
    """Skip without Chromium, or fail where MLTRICKS_REQUIRE_BROWSER=1 (CI) asks for it."""
    if CHROMIUM is None:
        if os.environ.get("MLTRICKS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (MLTRICKS_REQUIRE_BROWSER=1) but was not found")
        pytest.skip("chromium is not installed (CI installs it: see .ci/run)")


@pytest.mark.slow
@pytest.mark.xdist_group("smoke-runs")
def test_report_of_every_smoke_run_in_a_real_browser(smoke_runs):
    _require_chromium()
    out = smoke_runs  # every experiment's smoke run (the smoke tests check each folder)
    for name in registry.names():
        (run,) = (out / name).iterdir()
        state = json.loads((run / "status.json").read_text())["state"]
        assert state == "done", f"{name}'s smoke run is {state}"
    page = write_report(out)
    with Browser(CHROMIUM, width=1200) as browser:
        browser.open(page.resolve().as_uri())
        images = browser.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        rows = browser.evaluate(
            "Array.from(document.querySelectorAll('#claims tr[data-experiment]'))"
            ".map(r => r.dataset.experiment)"
        )
        sections = browser.evaluate(
            "Array.from(document.querySelectorAll('section')).map(s => s.id)"
        )
        overflow = browser.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        browser.screenshot(out / "report-screenshot.png")
        errors = browser.errors()
    assert images, "the report shows no figures"
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, f"images that did not load: {broken}"
    for name in registry.names():
        assert name in rows, f"no row for {name} in the claims table"
        assert name in sections, f"no section for {name}"
    assert overflow, "the page is wider than the window"
    assert not errors, errors
    assert (out / "report-screenshot.png").stat().st_size > 10_000


@pytest.mark.slow
def test_report_is_readable_on_a_narrow_screen(tmp_path):
    _require_chromium()
    out = tmp_path / "runs"
    registry_backup = dict(registry.EXPERIMENTS)
    try:
        registry.EXPERIMENTS.clear()
        registry.EXPERIMENTS["fake"] = "tests.lab.fake_experiments"
        assert main(["run", "fake", "--preset", "quick", "--out", str(out), "--no-progress"]) == 0
    finally:
        registry.EXPERIMENTS.clear()
        registry.EXPERIMENTS.update(registry_backup)
    page = write_report(out)
    with Browser(CHROMIUM, width=380, height=800) as browser:
        browser.open(page.resolve().as_uri())
        fits = browser.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
        )
        widest = browser.evaluate(
            "Math.max(...Array.from(document.images).map(i => i.getBoundingClientRect().width))"
        )
        browser.screenshot(out / "narrow-screenshot.png")
        assert not browser.errors()
    assert fits, "the page scrolls sideways on a 380 px screen"
    assert widest <= 380
