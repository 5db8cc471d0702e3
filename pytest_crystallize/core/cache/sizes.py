"""Sizes in bytes, read from and written for people: ``2GiB``, ``500MB``, ``1048576``.

A leaf module of the standard library only: the pytest options read the
cache's size limit with it in every run, without loading the cache.
"""

from __future__ import annotations

import re
from typing import Final

from pytest_crystallize.errors import ConfigurationError

__all__ = ["format_size", "parse_size"]

_SIZE: Final = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*")
_UNITS: Final = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
                 "g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}


def parse_size(text: str, source: str) -> int:
    """A size such as ``2GiB``, ``500MB`` or ``1048576`` in bytes; raises ConfigurationError naming ``source``."""
    match = _SIZE.fullmatch(str(text))
    if match is None or float(match.group(1)) <= 0:
        msg = f"{source} must be a size > 0 such as 2GiB, 500MB or 1048576 (bytes), got {text!r}"
        raise ConfigurationError(msg)
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def format_size(size: float) -> str:
    """``size`` bytes in binary units, e.g. ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # not reached
