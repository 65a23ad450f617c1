"""Fixtures of the lab's tests."""

import os

import pytest
from filelock import FileLock

from mltricks.lab import registry


@pytest.fixture(scope="session")
def smoke_runs(request, tmp_path_factory):
    """The smoke preset of every experiment the session's tests ask for, run once through
    ``mltricks run NAME ... --preset smoke``: the per-experiment smoke tests check each run
    folder and the browser test opens their report, instead of each running them again.

    A test parametrized by ``name`` asks for that experiment; any other test using the fixture
    asks for all of them. Its users share the xdist group "smoke-runs"; where xdist still hands
    some to another worker, that worker waits for the first one's runs (a file lock in the
    session's folder) instead of running them again. A failed experiment is left for its own
    test to report.
    """
    from mltricks.lab.cli import main

    wanted: set[str] = set()
    for item in request.session.items:
        if "smoke_runs" not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("name") if callspec else None
        if name is None:
            wanted = set(registry.names())
            break
        wanted.add(name)
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, shared by its workers
    out = base / "smoke-runs"
    names = [name for name in registry.names() if name in wanted]
    with FileLock(str(base / "smoke-runs.lock")):
        if names and not (base / "smoke-runs.done").is_file():
            main(["run", *names, "--preset", "smoke", "--out", str(out), "--no-progress"])
            (base / "smoke-runs.done").touch()
    return out
