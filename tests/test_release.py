"""Release hygiene: one version, a license in both builds, classifiers, metadata twine accepts,
a changelog in Keep a Changelog form, deprecations that name the release removing them.

The sdist and the wheel are built once, from a copy of the checkout's files, with setuptools'
own build backend and without build isolation (as tests/test_packaging.py builds its wheel), so
nothing is downloaded and the tree is left alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import mltricks

ROOT = Path(__file__).resolve().parents[1]
# (setuptools rewrites sys.argv while it builds: the folder is read from it first)
BUILD = (
    "import sys\n"
    "from setuptools import build_meta\n"
    "out = sys.argv[1]\n"
    "build_meta.build_sdist(out)\n"
    "build_meta.build_wheel(out)\n"
)


def _release_files() -> list[Path]:
    files = [p for p in (ROOT / "src").rglob("*") if p.is_file()]
    files = [p for p in files if "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    return [*files, ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "LICENSE"]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    source = tmp_path_factory.mktemp("source")
    for path in _release_files():
        target = source / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = out.glob("mltricks-*.tar.gz")
    (wheel,) = out.glob("mltricks-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def _wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode()), archive.namelist()


@pytest.mark.slow
def test_both_builds_carry_the_version_the_license_and_the_classifiers(builds):
    metadata, names = _wheel_metadata(builds["wheel"])
    assert metadata["Name"] == "mltricks"
    assert metadata["Version"] == mltricks.__version__ == "0.2.0"
    assert metadata["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names[-10:]
    classifiers = set(metadata.get_all("Classifier"))
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Topic :: Scientific/Engineering :: Artificial Intelligence" in classifiers
    # PEP 639: the license is stated by License-Expression; a license classifier is refused
    assert not [c for c in classifiers if c.startswith("License ::")]
    with tarfile.open(builds["sdist"]) as archive:
        members = archive.getnames()
        (pkg_info,) = [n for n in members if n.count("/") == 1 and n.endswith("/PKG-INFO")]
        sdist_metadata = Parser().parsestr(archive.extractfile(pkg_info).read().decode())
    assert f"mltricks-{mltricks.__version__}/LICENSE" in members
    assert sdist_metadata["Version"] == mltricks.__version__
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "the mltricks authors" in license_text


@pytest.mark.slow
def test_twine_check_passes_on_the_sdist_and_the_wheel(builds):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            str(builds["sdist"]),
            str(builds["wheel"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_version_is_defined_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, flags=re.M), "version is set in pyproject"
    assert 'dynamic = ["version"]' in project
    assert 'version = { attr = "mltricks.__version__" }' in pyproject
    assigned = [
        path.relative_to(ROOT)
        for path in (ROOT / "src").rglob("*.py")
        if re.search(r"^__version__\s*=", path.read_text(), flags=re.M)
    ]
    assert assigned == [Path("src/mltricks/__init__.py")]


def test_the_changelog_keeps_a_changelog_form():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (Unreleased|\d{4}-\d{2}-\d{2})$", text, re.M)
    versions = [version for version, _ in releases]
    assert versions[:2] == [mltricks.__version__, "0.1.0"], releases
    assert "Keep a Changelog" in text
    current = text.split(f"## [{mltricks.__version__}]", 1)[1].split("\n## [", 1)[0]
    assert "smallml" in current  # the former name is stated where it changed
    sections = re.findall(r"^### (\w+)$", current, flags=re.M)
    assert sections and set(sections) <= {
        "Added",
        "Changed",
        "Deprecated",
        "Removed",
        "Fixed",
        "Security",
    }


def test_every_deprecation_names_the_release_that_removes_it():
    vague = []
    for path in (ROOT / "src").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"next (release|version)|future release", line, flags=re.I):
                vague.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not vague, "deprecations must name the version that removes them:\n" + "\n".join(vague)
