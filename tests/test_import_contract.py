"""The engine seam, checked by reading the code (`ast`, no import of it): engines stay behind
`optimus/warehouse/`, callers speak only the `Warehouse` protocol, and no optimus modules import
each other in a cycle.

Each rule lists today's known exceptions explicitly, so a new one fails the test and a fixed one
must leave its list (the lists are compared exactly, not as upper bounds).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "optimus"
WAREHOUSE = "optimus.warehouse"

ENGINE_PACKAGES = {"duckdb", "psycopg", "psycopg2", "psycopg_pool", "pyspark"}
ENGINE_NAMES = {"duckdb", "postgres", "postgresql", "pyspark", "spark"}

# Comparisons with an engine's name outside warehouse/, by `module:function` and how many.
# Each would be SQL spelt per engine; the dialect layer (issue 15) removed them all.
DIALECT_BRANCHES: Counter[str] = Counter()  # none left: shared SQL asks the dialect (wh.sql) for its fragments

# Not an engine branch: the settings check that the configured URLs name a known kind of warehouse.
URL_SCHEMES = Counter({"optimus.config:_validate": 3})  # the schemes known; a spark:/// URL names its lake

# Imports inside functions (run when called, not at import) that close a cycle among optimus modules,
# as (importing module, imported module). Each is allowed, and listed here, so that no new one comes
# unnoticed; imports under `if TYPE_CHECKING:` never run and are not counted.
DEFERRED_CYCLES: set[tuple[str, str]] = set()  # none left


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


MODULES = _modules()


def _in_warehouse(module: str) -> bool:
    return module == WAREHOUSE or module.startswith(WAREHOUSE + ".")


class _Scope(ast.NodeVisitor):
    """Walks a module, knowing for each node its enclosing `Class.function` and whether it runs at import."""

    def __init__(self, module: str = "") -> None:
        self.module = module  # the module walked
        self.names: list[str] = []
        self.depth = 0  # >0 inside a function body
        self.type_checking = 0  # >0 inside `if TYPE_CHECKING:`

    def where(self) -> str:
        return ".".join(self.names) or "<module>"

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.append(node.name)
        self.generic_visit(node)
        self.names.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        name = getattr(node, "name", None)
        if name:
            self.names.append(name)
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        if name:
            self.names.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        guarded = (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING") or (
            isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"
        )
        self.visit(node.test)
        self.type_checking += guarded
        for child in node.body:
            self.visit(child)
        self.type_checking -= guarded
        for child in node.orelse:
            self.visit(child)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Imports(_Scope):
    def __init__(self, module: str, is_package: bool) -> None:
        super().__init__(module)
        self.is_package = is_package
        self.imports: list[tuple[str, bool, int]] = []  # (imported module, at import time, line)

    def _add(self, target: str, line: int) -> None:
        """`target` and the packages above it (importing a.b.c runs a/__init__ and a/b/__init__ first),
        but not this module's own packages (they are being imported already)."""
        if self.type_checking:  # for the type checker only: never run
            return
        at_import = self.depth == 0
        parts = target.split(".")
        own = {".".join(self.module.split(".")[:i]) for i in range(1, self.module.count(".") + 2)}
        for i in range(2, len(parts) + 1):  # `optimus` itself is empty
            name = ".".join(parts[:i])
            if name not in own or name == target:
                self.imports.append((name, at_import, line))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        target = _resolve(self.module, self.is_package, node)
        for alias in node.names:  # `from optimus.warehouse import schema`: the submodule, when it is one
            sub = f"{target}.{alias.name}"
            self._add(sub if sub in MODULES else target, node.lineno)


def _imports() -> dict[str, list[tuple[str, bool, int]]]:
    found = {}
    for module, (path, tree) in MODULES.items():
        walker = _Imports(module, path.name == "__init__.py")
        walker.visit(tree)
        found[module] = walker.imports
    return found


IMPORTS = _imports()


def test_engine_drivers_are_imported_only_under_warehouse() -> None:
    outside = [
        f"{module} line {line}: imports {target}"
        for module, imports in IMPORTS.items()
        if not _in_warehouse(module)
        for target, _top, line in imports
        if target.split(".")[0] in ENGINE_PACKAGES
    ]
    assert outside == []


def test_backend_modules_are_imported_only_under_warehouse() -> None:
    """A caller gets its warehouse from `optimus.warehouse.connect`, never a backend class by name."""
    backends = {f"{WAREHOUSE}.duckdb", f"{WAREHOUSE}.postgres", f"{WAREHOUSE}.postgres_query", f"{WAREHOUSE}.postgres_reader"}
    outside = [
        f"{module} line {line}: imports {target}"
        for module, imports in IMPORTS.items()
        if not _in_warehouse(module)
        for target, _top, line in imports
        if target in backends
    ]
    assert outside == []


# What the storage layer may not import: the orchestration above it.
ABOVE_STORAGE = (
    "optimus.pipeline",
    "optimus.daemon",
    "optimus.api",
    "optimus.cli",
    "optimus.client",
    "optimus.exports",
    "optimus.transfer",
    "optimus.services",
    "optimus.intake",
)
# None: what the services hold beside the engine is passed to connect() by its callers (pipeline.open_warehouse).
STORAGE_REACHING_UP: set[tuple[str, str]] = set()


def test_warehouse_does_no_orchestration() -> None:
    """warehouse/ stores; who runs what (the pipeline, services, the daemon, the copy's setup) is above it."""
    found = {
        (module, target)
        for module, imports in IMPORTS.items()
        if _in_warehouse(module)
        for target, _top, _line in imports
        if any(target == a or target.startswith(a + ".") for a in ABOVE_STORAGE)
    }
    assert found == STORAGE_REACHING_UP


def _backend_classes() -> dict[str, set[str]]:
    """Each backend class defined under warehouse/, with every attribute it has (methods, class
    attributes and the `self.x` it assigns), its bases' under warehouse/ included."""
    classes: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for module, (_path, tree) in MODULES.items():
        if not _in_warehouse(module):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name != "Warehouse":
                bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
                names = classes.setdefault(node.name, set())
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(inner.name)
                    elif (
                        isinstance(inner, ast.Attribute)
                        and isinstance(inner.value, ast.Name)
                        and inner.value.id == "self"
                        and isinstance(inner.ctx, ast.Store)
                    ):
                        names.add(inner.attr)
                    elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                        names.add(inner.target.id)
                    elif isinstance(inner, ast.Assign):
                        names.update(t.id for t in inner.targets if isinstance(t, ast.Name))

    def members(name: str) -> set[str]:
        return classes.get(name, set()).union(*(members(b) for b in bases.get(name, [])))

    return {name: members(name) for name in classes if name.endswith("Warehouse")}


BACKENDS = _backend_classes()


def _protocol_members() -> set[str]:
    tree = MODULES[f"{WAREHOUSE}.base"][1]
    protocol = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Warehouse")
    members = set()
    for node in protocol.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members.add(node.target.id)
    return members


PROTOCOL = _protocol_members()


def test_the_backends_are_found() -> None:
    """The rules below read the backends' attributes: they must have found both."""
    assert {"DuckDBWarehouse", "PostgresWarehouse"} <= set(BACKENDS)
    assert {"query", "reader", "interrupt", "query_arrow", "execute_over_arrow", "capabilities"} <= PROTOCOL


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_backend_implements_the_whole_protocol(backend: str) -> None:
    assert PROTOCOL - BACKENDS[backend] == set()


def _calls(name: str) -> list[tuple[str, str, ast.Call]]:
    """Every call of the builtin `name` outside warehouse/, as (module, where, call)."""
    found = []
    for module, (_path, tree) in MODULES.items():
        if _in_warehouse(module):
            continue

        class Calls(_Scope):
            def visit_Call(self, node: ast.Call) -> None:
                if isinstance(node.func, ast.Name) and node.func.id == name:
                    found.append((self.module, self.where(), node))
                self.generic_visit(node)

        Calls(module).visit(tree)
    return found


def test_no_isinstance_on_a_backend_outside_warehouse() -> None:
    found = [
        f"{module}:{where} line {call.lineno}"
        for module, where, call in _calls("isinstance")
        if len(call.args) == 2
        and {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(call.args[1]) if isinstance(n, (ast.Name, ast.Attribute))}
        & set(BACKENDS)
    ]
    assert found == []


def test_no_probing_of_a_warehouse_with_hasattr_or_getattr() -> None:
    """What a warehouse has is on the protocol (or in its capabilities): nobody asks whether it has it."""
    members = set().union(*BACKENDS.values())
    found = [
        f"{module}:{where} line {call.lineno}: {ast.unparse(call)}"
        for name in ("hasattr", "getattr")
        for module, where, call in _calls(name)
        if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) and call.args[1].value in members
    ]
    assert found == []


def test_no_private_attribute_of_a_warehouse_outside_warehouse() -> None:
    """The connection and lock a backend keeps are its own (`con`, `_lock`, ...): outside warehouse/,
    only the protocol is used."""
    private = {name for names in BACKENDS.values() for name in names if name not in PROTOCOL and (name.startswith("_") or name == "con")}
    private -= {"__init__"}
    found = []
    for module, (_path, tree) in MODULES.items():
        if _in_warehouse(module):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{module} line {node.lineno}: {ast.unparse(node)}")
    assert found == []


def _engine_name_comparisons() -> Counter[str]:
    """Comparisons outside warehouse/ with an engine's name, or with a dialect's name (`wh.sql.name`)."""

    def names_engine(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.lower() in ENGINE_NAMES
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names_engine(e) for e in node.elts)
        if isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Attribute):
            return node.value.attr == "sql"  # `wh.sql.name`: the dialect's name
        return isinstance(node, ast.Attribute) and node.attr == "dialect"

    found: Counter[str] = Counter()
    for module, (_path, tree) in MODULES.items():
        if _in_warehouse(module):
            continue

        class Comparisons(_Scope):
            def visit_Compare(self, node: ast.Compare) -> None:
                if any(names_engine(side) for side in [node.left, *node.comparators]):
                    found[f"{self.module}:{self.where()}"] += 1
                self.generic_visit(node)

            def visit_match_case(self, node: ast.match_case) -> None:
                if any(isinstance(p, ast.MatchValue) and names_engine(p.value) for p in ast.walk(node.pattern)):
                    found[f"{self.module}:{self.where()}"] += 1
                self.generic_visit(node)

        Comparisons(module).visit(tree)
    return found


def test_no_branch_on_an_engine_name_outside_warehouse() -> None:
    """Callers branch on `wh.capabilities`, never on the engine's name; the known exceptions are listed
    exactly (a fixed one leaves the list, a new one fails)."""
    assert _engine_name_comparisons() == DIALECT_BRANCHES + URL_SCHEMES


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def _edges(at_import_only: bool) -> dict[str, set[str]]:
    return {
        module: {target for target, top, _line in imports if target in MODULES and target != module and (top or not at_import_only)}
        for module, imports in IMPORTS.items()
    }


def test_no_import_cycle_at_import_time() -> None:
    assert _cycles(_edges(at_import_only=True)) == []


def test_deferred_imports_that_close_a_cycle_are_listed() -> None:
    """An import inside a function may point back up the layers (it runs when called); each such
    edge that closes a cycle is named in DEFERRED_CYCLES, so none is added unnoticed."""
    every = _edges(at_import_only=False)
    closing = set()
    for module, imports in IMPORTS.items():
        for target, at_import, _line in imports:
            if at_import or target not in MODULES or target == module:
                continue
            # it closes a cycle when its target leads back to this module (at import or when called)
            seen, todo = set(), [target]
            while todo:
                current = todo.pop()
                if current == module:
                    closing.add((module, target))
                    break
                if current not in seen:
                    seen.add(current)
                    todo.extend(every.get(current, ()))
    assert closing == DEFERRED_CYCLES
