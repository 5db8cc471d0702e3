"""Versions of the software a result was produced with, for provenance."""

from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata

__all__ = ["package_versions"]

_PACKAGES = ("pytest-crystallize", "numpy", "scipy", "pandas", "pyarrow", "pluggy", "pytest")


def package_versions() -> dict[str, str]:
    """Return Python's and the relevant installed packages' versions."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
