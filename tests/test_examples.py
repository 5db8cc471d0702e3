"""Every example under examples/ runs green with ``pytest --crystallize``, warning-free.

Each example folder is run in a fresh interpreter from inside the folder, as a
user would; the repository's pytest settings (``filterwarnings = error``,
``--strict-markers``) apply because pytest finds pyproject.toml above it. So
does the repository's root conftest.py (pytester for our own tests): each
example is also run without it, and its output must not change.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"


def _example_folders() -> list[Path]:
    return sorted(
        folder for folder in EXAMPLES.iterdir() if folder.is_dir() and any(folder.glob("experiment_*.py"))
    )


def _experiment_names(folder: Path) -> list[str]:
    names = []
    for file in sorted(folder.glob("experiment_*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        names += [
            n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("experiment_")
        ]
    return names


def _missing_imports(folder: Path) -> list[str]:
    """Top-level modules the example imports that are not installed."""
    modules = set()
    for file in folder.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return sorted(m for m in modules if importlib.util.find_spec(m) is None)


def test_examples_exist():
    assert _example_folders(), f"no example folder with an experiment_*.py under {EXAMPLES}"


def _skip_unless_runnable(folder: Path) -> None:
    missing = _missing_imports(folder)
    if missing:
        pytest.skip(f"example {folder.name} needs {', '.join(missing)}: pip install -e '.[examples]'")


@functools.cache
def _run_example(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``pytest --crystallize`` inside ``folder``, as a user runs it (cached: examples are deterministic)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in examples/
    # Dev-only plugins off: the README's first command installs just the
    # examples extra, and our ini must still be valid there (--strict-config).
    dev_only = ["-p", "no:asyncio", "-p", "no:xdist"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--crystallize", "-p", "no:cacheprovider", *dev_only, *extra, str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _untimed(output: str) -> str:
    # The closing line's duration, and its width: pytest centres it between '=' signs.
    return re.sub(r"^=+ (.*?) in [\d.]+s( \([^)]*\))? =+$", r"== \1 in <time> ==", output, flags=re.MULTILINE)


@pytest.mark.parametrize("folder", _example_folders(), ids=lambda p: p.name)
def test_example_runs_green(folder: Path):
    _skip_unless_runnable(folder)
    proc = _run_example(folder)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"^=+ crystallize =+$", proc.stdout, re.MULTILINE), output
    assert re.search(r"\bhypothes[ie]s passed, 0 failed", proc.stdout), output
    names = _experiment_names(folder)
    assert names, f"{folder} defines no experiment_* function"
    for name in names:
        assert f"::{name} " in proc.stdout, output
    # pytest's closing line must report passes only: no failed, skipped, error or warnings.
    closing = proc.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(r"=+ \d+ passed in [\d.]+s( \(.*\))? =+", closing), output
    assert "warnings summary" not in proc.stdout, output


@pytest.mark.parametrize("folder", _example_folders(), ids=lambda p: p.name)
def test_example_runs_the_same_without_the_repositorys_root_conftest(folder: Path):
    _skip_unless_runnable(folder)
    with_root = _run_example(folder)
    # Conftests above --confcutdir are not loaded; the example's own ones still are.
    without_root = _run_example(folder, "--confcutdir", str(folder))
    assert "rootdir: " + str(ROOT) in with_root.stdout, with_root.stdout  # so the root conftest applied
    assert with_root.returncode == without_root.returncode, without_root.stdout + without_root.stderr
    assert _untimed(with_root.stdout) == _untimed(without_root.stdout)
    assert with_root.stderr == without_root.stderr


def test_the_root_conftest_is_loaded_in_an_examples_run():
    # What the comparison above compares: the root conftest does reach an example's run
    # (its pytester fixtures show), and --confcutdir keeps it out.
    folder = _example_folders()[0]
    listed = [_run_example(folder, "--fixtures", *extra).stdout for extra in ((), ("--confcutdir", str(folder)))]
    assert re.search(r"^pytester -- ", listed[0], re.MULTILINE), listed[0]
    assert not re.search(r"^pytester -- ", listed[1], re.MULTILINE), listed[1]


def test_readme_example_command_names_an_existing_examples_path():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert block, "README.md has no ```bash block"
    first_line = block.group(1).splitlines()[0]
    tokens = [t for part in first_line.split("&&") for t in shlex.split(part)]
    paths = [t for t in tokens if t.rstrip("/").split("/")[0] == "examples"]
    assert "--crystallize" in tokens, first_line
    assert paths, f"the README's first command names no examples path: {first_line!r}"
    for path in paths:
        assert (ROOT / path).exists(), f"README names {path!r}, which does not exist"
        assert _example_folders(), path
