"""No import circles inside the package, also none hidden by an import inside a function.

Every import that runs counts: at the top of a module or inside a function (it runs at call
time). Imports under ``if TYPE_CHECKING:`` never run and are left out, and so is a package's
``__init__`` importing its own submodules (re-exports).
"""

import ast
from pathlib import Path

import mltricks

PACKAGE = Path(mltricks.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """Import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped |= set(ast.walk(child))
    return skipped


def import_graph(root: Path) -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` for every ``.py`` file under ``root``."""
    paths = {_module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if node in skipped:
                continue
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in paths:  # a name imported from a module
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name and not candidate.startswith(name + "."):
                    targets.add(candidate)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import A\nfrom pkg.b import B\n")
    (package / "a.py").write_text("from pkg.b import B\n\nclass A:\n    pass\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.c import C\n\n"
        "class B:\n    def make(self):\n        from pkg.a import A\n        return A()\n"
    )
    (package / "c.py").write_text("from pkg.b import B\n")
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg.a"}  # the type-checking import of pkg.c is left out
    assert graph["pkg"] == set()  # the package's re-exports of its own modules do not count
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    (package / "b.py").write_text("class B:\n    pass\n")
    assert cycles(import_graph(package)) == []
