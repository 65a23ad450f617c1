"""House rules that keep the package easy to live in (docs/design.md, Layout)."""

import ast
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mltricks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mltricks.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


# the console script's entry: it imports the lab only after checking that its extra is installed
COMMAND_ENTRY = PACKAGE / "_command.py"


def test_core_never_imports_the_lab():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "lab") in path.parents or path == COMMAND_ENTRY:
            continue
        lab = [n for n in _imports(path) if n == "mltricks.lab" or n.startswith("mltricks.lab.")]
        if lab:
            offenders.append(f"{path.relative_to(PACKAGE)} imports {lab}")
    assert not offenders, offenders


def test_the_check_catches_a_lab_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from mltricks.lab import engine\n")
    assert "mltricks.lab" in _imports(bad)


EXPERIMENTS = PACKAGE / "lab" / "experiments"
# what an experiment may import from the lab: its infrastructure and the shared recipe modules
LAB_INFRASTRUCTURE = ("config", "config_fields", "engine", "experiment", "stats", "runs")
RECIPE_MODULES = (
    "attacked_networks",
    "baselines",
    "data_formats",
    "data_sources",
    "labeled_shares",
    "lr_problem",
    "plots",
    "semi_supervised",
    "splits",
    "training",
)
LAB_FOR_EXPERIMENTS = {f"mltricks.lab.{name}" for name in LAB_INFRASTRUCTURE + RECIPE_MODULES}


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module ``path`` imports, with ``from mltricks.lab import engine`` read as
    ``mltricks.lab.engine`` and relative imports resolved against ``package``."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            parts = ([*base] if node.level else []) + ([node.module] if node.module else [])
            module = ".".join(parts)
            modules.add(module)
            # `from package import name` may import a submodule
            modules |= {f"{module}.{alias.name}" for alias in node.names}
    return modules


def _lab_modules(path: Path, package: str) -> set[str]:
    """The ``mltricks.lab`` modules ``path`` imports (names imported from a lab module, such as
    ``Claim`` from ``mltricks.lab.experiment``, are not modules and are left out)."""
    found = set()
    for module in _imported_modules(path, package):
        if module == "mltricks.lab" or not module.startswith("mltricks.lab."):
            continue
        parts = module.split(".")
        # mltricks.lab.<module>, or mltricks.lab.experiments.<experiment>
        depth = 4 if parts[2] == "experiments" and len(parts) > 3 else 3
        found.add(".".join(parts[:depth]))
    return found


def test_experiments_import_only_the_core_the_lab_infrastructure_and_recipes():
    offenders = []
    for path in sorted(EXPERIMENTS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        wrong = _lab_modules(path, "mltricks.lab.experiments") - LAB_FOR_EXPERIMENTS
        if wrong:
            offenders.append(f"{path.name} imports {sorted(wrong)}")
    assert not offenders, offenders


def test_benchmarks_never_import_an_experiment():
    benchmarks = sorted((ROOT / "benchmarks").glob("*.py"))
    assert benchmarks
    offenders = []
    for path in benchmarks:
        wrong = {
            m for m in _lab_modules(path, "benchmarks") if m.startswith("mltricks.lab.experiments")
        }
        if wrong:
            offenders.append(f"{path.name} imports {sorted(wrong)}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    "source",
    [
        "from mltricks.lab.experiments.fgsm import train_digits_cnn\n",
        "from mltricks.lab.experiments import fgsm\n",
        "import mltricks.lab.experiments.fgsm\n",
        "from .fgsm import train_digits_cnn\n",
        "from . import fgsm\n",
        "from mltricks.lab import registry\n",
    ],
)
def test_the_import_check_catches_an_experiment_importing_another(tmp_path, source):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    assert _lab_modules(bad, "mltricks.lab.experiments") - LAB_FOR_EXPERIMENTS


def test_the_import_check_lets_the_lab_infrastructure_through(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        "from mltricks.lab import engine, splits\n"
        "from mltricks.lab.experiment import Claim, Preset, RunContext\n"
        "from mltricks.lab.stats import mean_interval\n"
        "from mltricks.models import SmallCNN\n"
    )
    assert _lab_modules(good, "mltricks.lab.experiments") == {
        "mltricks.lab.engine",
        "mltricks.lab.splits",
        "mltricks.lab.experiment",
        "mltricks.lab.stats",
    }


def test_the_recipe_modules_exist_and_list_their_public_names():
    # the allowed list names real modules, each with a complete __all__ (issue 24, item 2)
    for name in RECIPE_MODULES:
        module = importlib.import_module(f"mltricks.lab.{name}")
        defined = set()  # functions, classes and constants the module itself defines
        for node in ast.parse(Path(module.__file__).read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()}
        public = {n for n in defined if not n.startswith("_")}
        assert set(module.__all__) == public, f"mltricks.lab.{name}: {public ^ set(module.__all__)}"


def test_experiments_and_recipe_modules_stay_under_400_lines_or_say_why():
    offenders = []
    modules = [PACKAGE / "lab" / f"{name}.py" for name in LAB_INFRASTRUCTURE[:2] + RECIPE_MODULES]
    for path in sorted(EXPERIMENTS.glob("*.py")) + modules:
        text = path.read_text()
        head = text[: text.find('"""', 3)] if text.startswith('"""') else ""
        if text.count("\n") > 400 and "400 lines" not in head:
            offenders.append(f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
    assert not offenders, offenders


FAMILIES = sorted(
    m.name
    for m in pkgutil.iter_modules([str(PACKAGE)])
    if m.ispkg and not m.name.startswith("_") and m.name != "lab"
)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_lists_its_public_names(family):
    module = importlib.import_module(f"mltricks.{family}")
    assert hasattr(module, "__all__"), f"mltricks.{family} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"mltricks.{family}.__all__ names missing {name}"


@pytest.mark.skipif(
    shutil.which("ruff", path=str(Path(sys.executable).parent)) is None,
    reason="ruff is not installed in this environment",
)
def test_ruff_lint_and_format_are_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    for args in (["check", "--quiet", "."], ["format", "--check", "--quiet", "."]):
        result = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_no_shell_and_no_unsafe_loading_in_the_package():
    """Paths from --data and --out never reach a shell, and nothing unpickles arbitrary files:
    checkpoints go through torch.load(weights_only=True), CIFAR through a data-only unpickler."""
    unsafe = re.compile(
        r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.|pickle\.loads?\(|"
        r"trust_remote_code\s*=\s*True"
    )
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        found += [f"{path.relative_to(PACKAGE)}: {m.group()}" for m in unsafe.finditer(text)]
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in call.group(1):
                found.append(f"{path.relative_to(PACKAGE)}: {call.group()}")
    assert not found, found


def test_no_module_of_the_old_name_remains():
    """The project was called smallml before 0.2.0; that name belongs to another project on
    PyPI with the same import package, so nothing here may install or import it (a shim would
    shadow that project)."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests", "benchmarks", "scripts")
        for path in (ROOT / folder).rglob("*")
        if "smallml" in path.name.lower()
    ]
    assert offenders == []
    old_name = "small" + "ml"
    sources = [p for p in PACKAGE.rglob("*.py") if old_name in p.read_text().lower()]
    assert sources == []
    assert PACKAGE.name == "mltricks"
