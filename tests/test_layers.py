"""Guard tests for the layers: the engine never imports pytest, the package stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pytest_crystallize

HEAVY = ("scipy", "pandas", "pyarrow")
#: Optional extras: imported only when a YAML file is read, a Pydantic model is bound, a figure drawn or Dask runs.
#: (Not cloudpickle, which the dask extra brings: pyarrow imports it by itself wherever it is installed.)
OPTIONAL = ("pydantic", "yaml", "matplotlib", "dask", "distributed")
SRC = Path(pytest_crystallize.__file__).parent


def _loaded_after(statement: str) -> set[str]:
    code = (
        "import sys\n"
        f"{statement}\n"
        "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_package_loads_neither_pytest_nor_heavy_libraries() -> None:
    loaded = _loaded_after("import pytest_crystallize")
    unwanted = {"pytest", "_pytest", *HEAVY, *OPTIONAL}
    assert loaded.isdisjoint(unwanted), loaded & unwanted


def test_running_an_experiment_with_dataclass_binding_and_json_configs_loads_no_optional_extra() -> None:
    loaded = _loaded_after(
        "import json, pathlib, tempfile\n"
        "from dataclasses import dataclass\n"
        "from typing import Annotated\n"
        "from pytest_crystallize import Bind, load_config, run_experiment\n"
        "path = pathlib.Path(tempfile.mkdtemp()) / 't.json'\n"
        "path.write_text(json.dumps({'params': {'c': {'x': 1}}, 'grid': {'c.x': [2, 3]}}))\n"
        "config = load_config(path)\n"
        "@dataclass\n"
        "class C:\n"
        "    x: int\n"
        "def fn(ctx, c: Annotated[C, Bind('c')]):\n"
        "    return c.x\n"
        "r = run_experiment(fn, replicates=2, params=config.params, treatments=config.treatments, evaluators=[abs])\n"
        "r.summary(), r.verdicts_frame(), repr(r)"  # tables and the repr need no figure library
    )
    assert loaded.isdisjoint(OPTIONAL), loaded & set(OPTIONAL)


def test_the_dask_backend_module_and_the_pool_backends_load_no_dask() -> None:
    loaded = _loaded_after(
        "from pytest_crystallize import ParallelExecution, run_experiment\n"
        "from pytest_crystallize.plugins.dask import DaskExecution\n"
        "DaskExecution('tcp://127.0.0.1:8786')\n"
        "run_experiment(lambda ctx: ctx.metrics.add('v', 1.0), replicates=50, plugins=[ParallelExecution()])"
    )
    assert loaded.isdisjoint({"dask", "distributed", "cloudpickle"}), loaded & {"dask", "distributed", "cloudpickle"}


CORE_MODULES = sorted(
    ".".join(p.relative_to(SRC / "core").with_suffix("").parts).removesuffix(".__init__")
    for p in (SRC / "core").rglob("*.py")
    if p.name != "__init__.py" or p.parent != SRC / "core"
)


def test_every_core_module_imports_without_pytest() -> None:
    # One interpreter, modules imported one by one: the first that pulls pytest in is named.
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module('pytest_crystallize.core.' + name)\n"
        "    if 'pytest' in sys.modules or '_pytest' in sys.modules:\n"
        "        print(name)\n"
        "        break\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core module imports pytest: {out.stdout.strip()}"
    assert len(CORE_MODULES) > 30  # stats/ and gate/ included


def test_core_source_never_mentions_a_pytest_import() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in (SRC / "core").rglob("*.py")
        for line in path.read_text().splitlines()
        if line.strip().startswith(("import pytest", "from pytest ", "import _pytest", "from _pytest"))
    ]
    assert offenders == []


def test_loading_the_plugin_without_experiments_imports_no_heavy_library(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_light():
            heavy = [m for m in ("scipy", "pandas", "pyarrow", "pydantic", "yaml") if m in sys.modules]
            assert heavy == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "crystallize", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
