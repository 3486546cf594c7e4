"""The CLI's layout holds: its modules import each other without a cycle (every import counts, a
function's lazy ones too: a cycle hidden in a function body is still a cycle), and no command
probes a service or the warehouse with hasattr/getattr.

(A package's submodules import the package itself first; that implicit edge is not counted.)"""

from __future__ import annotations

import ast
from pathlib import Path

import optimus

SRC = Path(optimus.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every optimus.cli / optimus.client module this file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from optimus.cli import render` imports the submodule; `from optimus.cli.common import app` the module
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module for alias in node.names]
        found |= {n for n in names if n in known}
    return found


def cli_graph() -> dict[str, set[str]]:
    files = sorted((SRC / "cli").glob("*.py")) + [SRC / "client.py"]
    known = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, known) - {module_name(f)} for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of module names (first == last), or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name) :] + [name]
        if name in done:
            return None
        for target in sorted(graph.get(name, ())):
            if (cycle := visit(target, path + [name])) is not None:
                return cycle
        done.add(name)
        return None

    for start in sorted(graph):
        if (cycle := visit(start, [])) is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_lazy_imports() -> None:
    graph = cli_graph()
    assert "optimus.cli.intake" in graph["optimus.cli.core"]  # imported inside `sample` only


def test_no_import_cycle_in_the_cli() -> None:
    cycle = find_cycle(cli_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_no_command_probes_with_hasattr() -> None:
    for path in sorted((SRC / "cli").glob("*.py")):
        probes = [
            f"{node.func.id} at line {node.lineno}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
        ]
        assert not probes, f"{path.name} probes with {', '.join(probes)}"
