"""mltricks installs like a library: a light core, extras that name themselves when missing, and
a wheel that works outside the checkout.

The wheel tests install the built wheel into fresh virtual environments that see only the
dependency closure of what the wheel declares (the core's requirements, then the core's and
``[lab]``'s), linked from this environment's site-packages: installing torch afresh costs a
minute, linking it costs nothing, and the new environment still cannot import anything the
wheel did not ask for (the tests check that matplotlib, accelerate, transformers are absent).
pip installs the wheel with no index, so a requirement outside that closure fails the install.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import mltricks
from mltricks._utils.extras import EXTRAS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra installs tomli, the same parser, on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mltricks.__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CORE = {"torch", "torchvision", "numpy", "scipy", "scikit-learn"}
# families that guard an extra at import; every other family is core
GUARDED = {"lab", "nlp"}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _core_families() -> list[str]:
    return sorted(
        p.name
        for p in PACKAGE.iterdir()
        if (p / "__init__.py").exists() and not p.name.startswith("_") and p.name not in GUARDED
    )


def test_the_core_depends_only_on_the_light_core_with_safe_torch_floors():
    requirements = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    assert {canonicalize_name(r.name) for r in requirements} == CORE
    floors = {r.name: r.specifier for r in requirements}
    # weights_only=True loading has a known bypass up to torch 2.5.1 and an advisory fixed in 2.10
    assert not floors["torch"].contains("2.9.1") and floors["torch"].contains("2.10.0")
    assert not floors["torchvision"].contains("0.24.1") and floors["torchvision"].contains("0.25.0")
    every = PYPROJECT["project"]["dependencies"] + [
        r for group in PYPROJECT["project"]["optional-dependencies"].values() for r in group
    ]
    assert not [r for r in every if "==" in r], "exact pins belong in constraints.txt"
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.14\.1$", pins, flags=re.M)
    assert re.search(r"^torchvision==0\.29\.1$", pins, flags=re.M)
    # the pinned builds satisfy the floors
    assert floors["torch"].contains(torch.__version__.split("+")[0])


def test_extras_list_the_libraries_the_import_guards_check():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert _names(extras[extra]) == {canonicalize_name(m) for m in modules}, extra
    # dev installs everything the tests need (mlflow comes with the Makefile, see pyproject)
    dev = {r for r in extras["dev"] if r.startswith("mltricks[")}
    assert dev == {"mltricks[lab,nlp,tensorboard,dask]"}
    assert "'.[dev,mlflow,docs]'" in (ROOT / "Makefile").read_text()


def _module_level_imports(path: Path) -> set[str]:
    """Top-level module names imported when ``path`` is imported (not inside functions)."""
    names = set()
    pending = list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With):
            pending += [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
            if isinstance(node, ast.Try):
                pending += [n for h in node.handlers for n in h.body]
    return names


def test_core_families_import_no_extra_library_at_module_level():
    optional = {module for modules in EXTRAS.values() for module in modules}
    offenders = []
    for family in _core_families():
        for path in (PACKAGE / family).rglob("*.py"):
            found = _module_level_imports(path) & optional
            if found:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {sorted(found)}")
    assert not offenders, offenders


def test_the_import_check_sees_imports_under_if_and_try(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("try:\n    import matplotlib\nexcept ImportError:\n    pass\n")
    assert "matplotlib" in _module_level_imports(bad)
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def plot():\n    import matplotlib\n")
    assert "matplotlib" not in _module_level_imports(lazy)


@pytest.mark.parametrize(
    ("statement", "blocked", "family", "extra"),
    [
        ("import mltricks.nlp", "transformers", "mltricks.nlp", "nlp"),
        ("from mltricks.nlp import fill_mask", "tokenizers", "mltricks.nlp", "nlp"),
        ("import mltricks.lab", "matplotlib", "mltricks.lab", "lab"),
        ("import mltricks.lab", "accelerate", "mltricks.lab", "lab"),
        ("from mltricks.lab.cli import main", "torchmetrics", "mltricks.lab", "lab"),
    ],
)
def test_importing_a_family_without_its_extra_fails_with_one_line(
    statement, blocked, family, extra
):
    # a fresh interpreter: blocking a module in this one would leak into other tests
    code = f"import sys; sys.modules[{blocked!r}] = None; {statement}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"mltricks._utils.extras.MissingExtraError: {family} needs {blocked} "
        f"(not installed): pip install 'mltricks[{extra}]'"
    )


@pytest.mark.slow  # importing torchmetrics takes seconds
def test_core_calibration_error_matches_torchmetrics_which_it_replaced():
    """ensembles computes the expected calibration error itself (torchmetrics is a lab library)
    with torchmetrics' bins: same numbers, including confidences exactly on a bin edge and 1."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    from mltricks.ensembles import expected_calibration_error

    generator = torch.Generator().manual_seed(0)
    for trial in range(40):
        members, batch, classes = 1 + trial % 3, 5 + 13 * trial, 2 + trial % 6
        probs = torch.randn(members, batch, classes, generator=generator).mul(3).softmax(-1)
        if trial % 4 == 0:  # one-hot members: confidences 1, 1/2, 1/3 ... sit on bin edges
            probs = torch.eye(classes)[
                torch.randint(0, classes, (members, batch), generator=generator)
            ]
        targets = torch.randint(0, classes, (batch,), generator=generator)
        for num_bins in (1, 4, 15):
            expected = multiclass_calibration_error(
                probs.mean(0), targets, num_classes=classes, n_bins=num_bins
            )
            ours = expected_calibration_error(probs, targets, num_bins=num_bins)
            assert ours == pytest.approx(float(expected), abs=1e-6)
    with pytest.raises(ValueError, match="num_bins"):
        expected_calibration_error(probs, targets, num_bins=0)


# --- the wheel ---------------------------------------------------------------------------------


def _source_files() -> list[Path]:
    """The files a clean checkout has: git's tracked and unignored files, else all but caches."""
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        files = [ROOT / name for name in listed]
    else:
        files = list((ROOT / "src").rglob("*"))
    return [
        f
        for f in files
        if f.is_file() and "__pycache__" not in f.parts and ".egg-info" not in str(f)
    ]


def _clean_environment() -> dict[str, str]:
    """This process's environment without pip's settings (no index, no find-links, no config)
    and without anything that would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout's files (the build leaves the tree alone)."""
    source = tmp_path_factory.mktemp("source")
    for path in [*_source_files(), ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "LICENSE"]:
        target = source / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    out = tmp_path_factory.mktemp("wheel")
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "--wheel-dir", str(out)]
    subprocess.run(
        [sys.executable, "-m", "pip", *build, str(source)],
        check=True,
        capture_output=True,
        env=_clean_environment(),
        timeout=300,
    )
    (built,) = out.glob("mltricks-*.whl")
    return built


def _requirements(wheel: Path, extra: str | None) -> list[Requirement]:
    """The wheel's own Requires-Dist: the core's, or one extra's."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    found = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            requirement = Requirement(line.split(":", 1)[1].strip())
            if extra is None and requirement.marker is None:
                found.append(requirement)
            elif extra and requirement.marker and requirement.marker.evaluate({"extra": extra}):
                requirement.marker = None  # asked for: the closure takes it unconditionally
                found.append(requirement)
    return found


def _closure(requirements: list[Requirement]) -> list[importlib.metadata.Distribution]:
    """The installed distributions these requirements pull in, with their own dependencies."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = [(r, "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        distribution = importlib.metadata.distribution(name)
        assert requirement.specifier.contains(distribution.version, prereleases=True), (
            f"{distribution.version} of {name} does not satisfy {requirement}"
        )
        first = name not in seen
        seen[name] = distribution
        for wanted in ([""] if first else []) + sorted(requirement.extras):
            pending += [(Requirement(r), wanted) for r in distribution.requires or []]
    return list(seen.values())


def _environment(tmp: Path, distributions: list[importlib.metadata.Distribution]) -> Path:
    """A new virtual environment whose site-packages links exactly these distributions."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp)], check=True, timeout=120
    )
    (site,) = tmp.glob("lib/python*/site-packages")
    for distribution in distributions:
        root = Path(distribution.locate_file(""))
        tops = {Path(f).parts[0] for f in distribution.files or [] if Path(f).parts[0] != ".."}
        for top in tops:
            if (root / top).exists() and not (site / top).exists():
                (site / top).symlink_to(root / top)
    return tmp / "bin" / "python"


def _pip_install(python: Path, requirement: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", requirement],
        capture_output=True,
        text=True,
        env=_clean_environment(),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_clean_environment(),
        timeout=600,
    )


def test_the_wheel_ships_every_package_file(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    expected = {
        str(p.relative_to(ROOT / "src"))
        for p in _source_files()
        if (ROOT / "src" / "mltricks") in p.parents
    }
    assert "mltricks/py.typed" in expected
    assert expected - shipped == set()
    assert not [n for n in shipped if n.startswith(("tests/", "benchmarks/"))]


CORE_CHECK = """
import importlib, sys
from pathlib import Path
import mltricks
assert Path(mltricks.__file__).is_relative_to(Path(sys.prefix)), mltricks.__file__
for family in FAMILIES:
    importlib.import_module("mltricks." + family)
for absent in ("matplotlib", "accelerate", "tqdm", "torchmetrics", "transformers", "mlflow"):
    assert importlib.util.find_spec(absent) is None, absent + " is visible in the core install"
for package, extra in (("mltricks.lab", "lab"), ("mltricks.nlp", "nlp")):
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        assert f"pip install 'mltricks[{extra}]'" in str(error), error
    else:
        raise AssertionError(package + " imported without its extra")

import numpy as np
import torch
from mltricks.encodings import sinusoidal_positional_encoding
from mltricks.ensembles import MCDropout, ensemble_metrics
from mltricks.semi_supervised import ClusterThenLabel
from mltricks.tuning import lr_range_test

pe = sinusoidal_positional_encoding(16, 8)
assert pe.shape == (16, 8) and torch.allclose(pe.norm(dim=1), torch.full((16,), 2.0))
X = np.concatenate([np.random.default_rng(0).normal(m, 0.3, (20, 2)) for m in (-2, 2)])
y = np.full(40, -1)
y[[0, 20]] = [0, 1]
assert (ClusterThenLabel(n_clusters=2, random_state=0).fit(X, y).predict(X) == [0] * 20 + [1] * 20).all()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
x, t = torch.randn(32, 4), torch.randint(0, 3, (32,))
probs = MCDropout(model, num_samples=8)(x).softmax(-1)
assert probs.shape == (8, 32, 3) and 0 <= ensemble_metrics(probs, t)["ece"] <= 1
batches = [(x[i : i + 8], t[i : i + 8]) for i in range(0, 32, 8)]
result = lr_range_test(model, torch.nn.functional.cross_entropy, batches, num_batches=4)
assert result.losses.shape[1] == 4
print("core ok")
"""


@pytest.mark.slow
def test_the_wheel_works_with_the_core_dependencies_only(wheel, tmp_path):
    python = _environment(tmp_path / "venv", _closure(_requirements(wheel, None)))
    _pip_install(python, str(wheel))
    code = f"FAMILIES = {_core_families()!r}\n" + textwrap.dedent(CORE_CHECK)
    result = _run([python, "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("core ok")
    # the command is installed with the core but needs the lab: one line names the extra
    result = _run([tmp_path / "venv" / "bin" / "mltricks", "list"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mltricks: the mltricks command needs matplotlib, accelerate, tqdm, torchmetrics "
        "(not installed): pip install 'mltricks[lab]'"
    ]


@pytest.mark.slow
def test_the_wheel_with_the_lab_runs_an_experiment_and_a_report_outside_the_checkout(
    wheel, tmp_path
):
    requirements = _requirements(wheel, None) + _requirements(wheel, "lab")
    python = _environment(tmp_path / "venv", _closure(requirements))
    _pip_install(python, f"mltricks[lab] @ {wheel.as_uri()}")
    mltricks_command = tmp_path / "venv" / "bin" / "mltricks"
    work = tmp_path / "elsewhere"
    work.mkdir()
    args = ["run", "positional-encoding", "--preset", "smoke", "--out", "runs", "--no-progress"]
    result = _run([mltricks_command, *args], cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    (run,) = (work / "runs" / "positional-encoding").iterdir()
    assert '"state": "done"' in (run / "status.json").read_text()
    result = _run([mltricks_command, "report", "runs"], cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "positional-encoding" in (work / "runs" / "index.html").read_text()
    # trackers and the nlp family stay optional in a lab install
    result = _run([mltricks_command, *args, "--track", "tensorboard"], cwd=work)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mltricks: error: --track tensorboard needs tensorboard (not installed): "
        "pip install 'mltricks[tensorboard]'"
    ]
    result = _run(
        [python, "-c", "import mltricks.lab, sys; print(mltricks.lab.__file__)"], cwd=work
    )
    assert Path(result.stdout.strip()).is_relative_to(tmp_path / "venv"), result.stdout
    result = _run([python, "-c", "import mltricks.nlp"], cwd=work)
    assert result.stderr.strip().splitlines()[-1].endswith("pip install 'mltricks[nlp]'")
