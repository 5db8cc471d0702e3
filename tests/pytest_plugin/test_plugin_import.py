"""The plugin costs nothing where it is not used, and its modules import one another in one direction.

The guard is black-box: a pytest run in a subprocess, the plugin loaded from
its entry point, a conftest dumping ``sys.modules`` at session end.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import pytest_crystallize.pytest_plugin

HEAVY = ("numpy", "scipy", "pandas", "pyarrow", "pydantic", "yaml", "matplotlib")
#: The package's modules a session without experiments may load: the entry point's own light modules.
LIGHT_CORE = frozenset({
    "pytest_crystallize.core.defaults", "pytest_crystallize.core.vocabulary",
    # The options check the step cache's size limit: a docstring-only package and a regex, standard library only.
    "pytest_crystallize.core.cache", "pytest_crystallize.core.cache.sizes",
})
#: Loaded only for experiments: collection and running, saved runs, the gate, reports, progress.
ENGINE_SIDE = tuple(
    f"pytest_crystallize.pytest_plugin.{name}" for name in ("items", "selection", "storage", "progress", "html_report")
)

DUMP = """
    import json
    import sys

    def pytest_sessionfinish(session):
        loaded = {
            "modules": sorted(sys.modules),
            "plugin": session.config.pluginmanager.has_plugin("crystallize"),
        }
        (session.config.rootpath / "loaded.json").write_text(json.dumps(loaded))
"""
PLAIN = """
    import pytest

    def test_one():
        assert sum([1, 1]) == 2

    @pytest.mark.parametrize("n", range(3))
    def test_many(n):
        assert n >= 0

    class TestGrouped:
        def test_method(self):
            assert isinstance(self, TestGrouped)
"""


def _unwanted(modules: list[str]) -> list[str]:
    def heavy(name: str) -> bool:
        return name.split(".")[0] in HEAVY

    def engine(name: str) -> bool:
        if name.startswith("pytest_crystallize.core.") and name not in LIGHT_CORE:
            return True
        return name.startswith(("pytest_crystallize.plugins", *ENGINE_SIDE))

    return [name for name in modules if heavy(name) or engine(name)]


@pytest.mark.parametrize("args", [[], ["--crystallize"]], ids=["plain", "crystallize"])
def test_a_session_without_experiments_imports_no_heavy_library_and_no_engine_module(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makeconftest(DUMP)
    pytester.makepyfile(test_plain=PLAIN)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=5)
    loaded = json.loads((pytester.path / "loaded.json").read_text())
    assert loaded["plugin"], "the crystallize plugin was not loaded from its entry point"
    assert "pytest_crystallize.pytest_plugin" in loaded["modules"]
    ours = [m for m in loaded["modules"] if m.startswith("pytest_crystallize")]
    assert _unwanted(loaded["modules"]) == [], f"the package's modules loaded: {ours}"


PLUGIN_DIR = Path(pytest_crystallize.pytest_plugin.__file__).parent


def _runtime_imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    """Every import of a module, in functions too, leaving out ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _plugin_modules() -> dict[str, Path]:
    prefix = "pytest_crystallize.pytest_plugin"
    return {prefix if p.stem == "__init__" else f"{prefix}.{p.stem}": p for p in sorted(PLUGIN_DIR.glob("*.py"))}


def test_the_plugin_modules_import_one_another_without_a_cycle_even_inside_functions() -> None:
    modules = _plugin_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(path):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else [str(node.module)]
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                targets += [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    graph["pytest_crystallize.pytest_plugin"] -= set(modules)  # a package's submodules import their package first
    done: set[str] = set()

    def walk(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for target in sorted(graph[name]):
                walk(target, (*path, name))
            done.add(name)

    for name in graph:
        walk(name, ())
    assert graph["pytest_crystallize.pytest_plugin.keys"] == set()  # the leaf


def test_no_plugin_module_imports_another_module_s_underscore_names() -> None:
    offenders = [
        f"{path.name}: {node.module}.{alias.name}"
        for path in PLUGIN_DIR.glob("*.py")
        for node in _runtime_imports(path)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and alias.name != "__future__"
    ]
    assert offenders == []
