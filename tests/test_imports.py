"""Guard tests for the package's import graph, read from the source with ``ast``.

Every import of a package module counts, also one inside a function: a
function-level import that closes a cycle only moves the crash to run time.
Imports under ``if TYPE_CHECKING:`` do not count (they never run). Importing
a package counts as an edge to the package module (its ``__init__``), and so
does importing a module inside a package that is not one of the importer's
own ancestors: Python runs that package's ``__init__`` first. The importer's
ancestors are not edges (they are being initialized already; an explicit
``from pkg import name`` of one still is).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pytest_crystallize"
SRC = ROOT / PACKAGE


def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (packages by their __init__)."""
    modules = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


@dataclass(frozen=True, slots=True)
class Edge:
    """One import statement's edge from ``importer`` to the package module ``target``."""

    importer: str
    target: str
    line: int
    #: The import named a module inside ``target``, so only ``target``'s __init__ is implied.
    initializes: bool = False

    def where(self) -> str:
        path = MODULES.get(self.importer)
        where = f"{path.relative_to(ROOT) if path else self.importer}:{self.line}"
        return f"{where}, which initializes the package" if self.initializes else where


@dataclass(frozen=True, slots=True)
class PrivateImport:
    """``from <target> import <name>`` where ``name`` is an underscore name of another module."""

    importer: str
    target: str
    name: str
    line: int

    def __str__(self) -> str:
        return f"{MODULES[self.importer].relative_to(ROOT)}:{self.line}: {self.importer} uses {self.target}.{self.name}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Imports(ast.NodeVisitor):
    """Collects one module's run-time imports of package modules, wherever they stand."""

    def __init__(self, module: str) -> None:
        self.module = module
        # The package a relative import is relative to: a package's __init__ is inside itself.
        is_package = MODULES[module].name == "__init__.py"
        self.package = module if is_package else module.rpartition(".")[0]
        self.edges: list[Edge] = []
        self.private: list[PrivateImport] = []
        self.unresolved: list[str] = []
        #: Local names bound to package modules (``import a.b as m``, ``from a import m``).
        self.aliases: dict[str, str] = {}

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for statement in node.orelse:  # the else branch does run
                self.visit(statement)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != PACKAGE:
                continue
            self._edge(alias.name, node.lineno)
            if alias.asname:
                self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node)
        if base is None:
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in MODULES:
                self._edge(submodule, node.lineno)
                self.aliases[alias.asname or alias.name] = submodule
                continue
            self._edge(base, node.lineno)
            if _is_private(alias.name) and base != self.module:
                self.private.append(PrivateImport(self.module, base, alias.name, node.lineno))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # ``module._name`` on a module imported as a whole is the same reach into its internals.
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases and _is_private(node.attr):
            target = self.aliases[node.value.id]
            if f"{target}.{node.attr}" not in MODULES and target != self.module:
                self.private.append(PrivateImport(self.module, target, node.attr, node.lineno))
        self.generic_visit(node)

    def _absolute(self, node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            module = node.module or ""
            return module if module.split(".")[0] == PACKAGE else None
        parts = self.package.split(".")
        anchor = parts[: len(parts) - (node.level - 1)]
        return ".".join([*anchor, *([node.module] if node.module else [])])

    def _edge(self, target: str, line: int) -> None:
        if target not in MODULES:
            self.unresolved.append(f"{MODULES[self.module].relative_to(ROOT)}:{line}: {target}")
            return
        if target != self.module:
            self.edges.append(Edge(self.module, target, line))
        ancestors = {self.module.rsplit(".", n)[0] for n in range(self.module.count(".") + 1)}
        parts = target.split(".")
        for package in (".".join(parts[:n]) for n in range(1, len(parts))):
            if package not in ancestors:
                self.edges.append(Edge(self.module, package, line, initializes=True))


def _collect() -> list[_Imports]:
    collected = []
    for module, path in MODULES.items():
        visitor = _Imports(module)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        collected.append(visitor)
    return collected


COLLECTED = _collect()
#: importer -> target -> the first import statement making that edge.
GRAPH: dict[str, dict[str, Edge]] = {module: {} for module in MODULES}
for _visitor in COLLECTED:
    for _edge in _visitor.edges:
        GRAPH[_edge.importer].setdefault(_edge.target, _edge)


def strongly_connected(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_cycle(graph: dict[str, dict[str, Edge]], start: str, members: set[str]) -> list[Edge]:
    """The shortest cycle from ``start`` back to itself inside ``members`` (breadth first)."""
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target, edge in sorted(graph[node].items()):
                if target not in members:
                    continue
                if target == start:
                    path = [edge]
                    while path[0].importer != start:
                        path.insert(0, previous[path[0].importer])
                    return path
                if target not in previous:
                    previous[target] = edge
                    following.append(target)
        frontier = following
    msg = f"{start} is on no cycle inside {sorted(members)}"
    raise AssertionError(msg)


def _short(module: str) -> str:
    return module.removeprefix(f"{PACKAGE}.")


def describe_cycles(graph: dict[str, dict[str, Edge]]) -> list[str]:
    """One paragraph per import cycle: its modules, then one shortest cycle through each of them."""
    paragraphs = []
    for component in strongly_connected(graph):
        members = set(component)
        lines = [f"cycle among {len(component)} modules: {', '.join(map(_short, component))}"]
        seen: set[tuple[str, ...]] = set()
        for start in component:
            cycle = shortest_cycle(graph, start, members)
            # The same cycle found from another of its modules is shown once.
            key = tuple(sorted(edge.importer for edge in cycle))
            if key in seen:
                continue
            seen.add(key)
            hops = " -> ".join(f"{_short(e.importer)} ({e.where()})" for e in cycle)
            lines.append(f"  {hops} -> {_short(start)}")
        paragraphs.append("\n".join(lines))
    return paragraphs


def test_the_suite_imports_the_checkouts_package(pytestconfig: pytest.Config) -> None:
    # find_spec, not an attribute of the package: its __init__ may load names lazily.
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None
    assert spec.origin is not None
    hint = f"this run imports {PACKAGE} from {spec.origin}, not from the checkout {SRC}: pip install -e '.[dev]'"
    assert Path(spec.origin).resolve() == SRC / "__init__.py", hint
    # The pytest plugin (loaded through the installed entry point) comes from the checkout too.
    plugin = pytestconfig.pluginmanager.get_plugin("crystallize")
    assert plugin is not None, "the crystallize pytest plugin is not loaded"
    origin = Path(plugin.__spec__.origin).resolve()
    assert origin.is_relative_to(SRC), f"the crystallize plugin is loaded from {origin}, not from {SRC}"


def test_the_walk_sees_the_whole_package() -> None:
    assert len(MODULES) > 50
    assert f"{PACKAGE}.pytest_plugin" in MODULES
    # Edges the package cannot work without: the walk reads module- and function-level imports.
    assert f"{PACKAGE}.core.runner" in GRAPH[f"{PACKAGE}.pytest_plugin.items"]
    assert f"{PACKAGE}.core.stats" in GRAPH[f"{PACKAGE}.core.analysis"]  # imported inside evaluate()


def test_every_package_import_names_a_module_of_the_package() -> None:
    unresolved = [where for visitor in COLLECTED for where in visitor.unresolved]
    assert unresolved == []


def test_the_package_has_no_import_cycle() -> None:
    cycles = describe_cycles(GRAPH)
    assert not cycles, "import cycles (imports under TYPE_CHECKING excluded):\n" + "\n".join(cycles)


def test_no_module_imports_another_modules_underscore_name() -> None:
    private = sorted({str(p) for visitor in COLLECTED for p in visitor.private})
    assert private == [], "\n".join(private)


#: The outer layer: the adapters to pytest and to a shell. Nothing inside may import them.
ADAPTERS = (f"{PACKAGE}.pytest_plugin", f"{PACKAGE}.cli", f"{PACKAGE}.__main__")


def _is_adapter(module: str) -> bool:
    return any(module == adapter or module.startswith(f"{adapter}.") for adapter in ADAPTERS)


def test_imports_point_inward_the_engine_hooks_and_plugins_import_no_adapter() -> None:
    outward = sorted(
        f"{edge.where()}: {edge.importer} imports {edge.target}"
        for targets in GRAPH.values()
        for edge in targets.values()
        if _is_adapter(edge.target) and not _is_adapter(edge.importer)
    )
    assert outward == [], "\n".join(outward)


def _private_owner(module: str) -> str | None:
    """The package whose private module ``module`` is (``a.b`` for ``a.b._c.d``), or None."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if _is_private(part):
            return ".".join(parts[:index])
    return None


def test_a_private_module_is_imported_only_from_inside_its_package() -> None:
    outside = sorted(
        f"{edge.where()}: {edge.importer} imports {edge.target}"
        for targets in GRAPH.values()
        for edge in targets.values()
        if (owner := _private_owner(edge.target)) is not None
        and edge.importer != owner
        and not edge.importer.startswith(f"{owner}.")
    )
    assert outside == [], "\n".join(outside)


# -- the checker itself, on made-up graphs: it must find what it is meant to ---------------------------------


def _graph(*pairs: tuple[str, str]) -> dict[str, dict[str, Edge]]:
    graph: dict[str, dict[str, Edge]] = {}
    for importer, target in pairs:
        graph.setdefault(importer, {})[target] = Edge(importer, target, 1)
        graph.setdefault(target, {})
    return graph


def test_strongly_connected_finds_a_cycle_and_leaves_a_chain_alone() -> None:
    graph = _graph(("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"))
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected(_graph(("a", "b"), ("b", "c"), ("a", "c"))) == []


def test_a_cycle_is_described_by_its_path() -> None:
    graph = _graph(("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"))
    assert describe_cycles(graph) == ["cycle among 3 modules: a, b, c\n  a (a:1) -> b (b:1) -> a\n  c (c:1) -> b (b:1) -> c"]


def test_the_walk_skips_type_checking_and_reads_function_level_and_relative_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pytest_crystallize.core import results\n"
        "else:\n"
        "    from pytest_crystallize.core import seeds\n"
        "def later():\n"
        "    from . import pipeline\n"
        "    from .stats import _registry, compare\n"
        "    from ..errors import _hidden\n"
        "    import pytest_crystallize.core.context as c\n"
        "    from pytest_crystallize.plugins.seeding import SeedPlugin\n"
        "    return c._private\n"
    )
    visitor = _Imports(f"{PACKAGE}.core.runner")
    visitor.visit(ast.parse(source))
    targets = sorted({(_short(edge.target), edge.initializes) for edge in visitor.edges})
    assert targets == [
        ("core.context", False),
        ("core.pipeline", False),
        ("core.seeds", False),
        ("core.stats", False),
        ("core.stats", True),  # importing core.stats._registry runs core/stats/__init__.py first
        ("core.stats._registry", False),
        ("errors", False),
        ("plugins", True),
        ("plugins.seeding", False),
    ]
    assert sorted((p.target, p.name) for p in visitor.private) == [
        (f"{PACKAGE}.core.context", "_private"),
        (f"{PACKAGE}.errors", "_hidden"),
    ]
