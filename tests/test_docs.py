"""The documentation site builds with ``mkdocs build --strict``, so a broken link or a missing page fails CI.

MkDocs and the Material theme come with the ``docs`` extra, which ``dev``
includes; without them the tests skip and say how to install them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "mkdocs.yml"
DOCS = ROOT / "docs"


def _skip_without_mkdocs() -> None:
    missing = [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: pip install -e '.[docs]'")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # Material prints a banner about MkDocs 2.0 on every build unless told not to.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_docs_build_strictly(tmp_path: Path):
    _skip_without_mkdocs()
    proc = _build(CONFIG, tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index.html", "architecture/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


#: One way to break the site each: the page it is written into, the text, what the build must say.
BREAKAGES = (
    ("index.md", "See [nowhere](missing.md).", "'missing.md', but the target is not found"),
    ("index.md", "See [the layers](architecture.md#no-such-heading).", "#no-such-heading"),
    ("orphan.md", "# Orphan", "not included in the \"nav\""),
)


def test_a_broken_docs_site_fails_the_build(tmp_path: Path):
    # The same configuration on a copy of the pages broken in every way above. MkDocs reports
    # every warning before strict mode aborts, so one build shows that each is caught.
    _skip_without_mkdocs()
    shutil.copy(CONFIG, tmp_path / CONFIG.name)
    shutil.copytree(DOCS, tmp_path / DOCS.name)
    for page, text, _ in BREAKAGES:
        with (tmp_path / DOCS.name / page).open("a", encoding="utf-8") as file:
            file.write(f"\n\n{text}\n")
    proc = _build(tmp_path / CONFIG.name, tmp_path / "site")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert f"Aborted with {len(BREAKAGES)} warnings in strict mode" in output, output
    for _, _, message in BREAKAGES:
        assert message in output, output
