"""Guard tests for the layers: the engine never imports pytest, the package stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pytest_crystallize

HEAVY = ("scipy", "pandas", "pyarrow")
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
    assert loaded.isdisjoint({"pytest", "_pytest", *HEAVY}), loaded & {"pytest", "_pytest", *HEAVY}


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in (SRC / "core").glob("*.py") if p.stem != "__init__")
)
def test_every_core_module_imports_without_pytest(module: str) -> None:
    loaded = _loaded_after(f"import pytest_crystallize.core.{module}")
    assert "pytest" not in loaded
    assert "_pytest" not in loaded


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
            heavy = [m for m in ("scipy", "pandas", "pyarrow") if m in sys.modules]
            assert heavy == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "crystallize", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
