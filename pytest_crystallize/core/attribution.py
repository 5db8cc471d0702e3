"""Warnings about an experiment, attributed to the experiment's own code.

A warning issued after a run (too little power, replicates that share
data) points at the experiment function's file and line, not at ours, so
pytest's warning summary and ``-W error::...`` name the user's experiment.
Called after the run, so that warnings turned into errors cannot lose the
result.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["warn_at"]


def warn_at(function: Any, warning: Warning) -> None:
    """Issue ``warning`` as if raised at the first line of ``function`` (plainly when it has no code)."""
    code = getattr(function, "__code__", None)
    if code is None:
        warnings.warn(warning, stacklevel=3)
        return
    warnings.warn_explicit(
        warning, type(warning), code.co_filename, code.co_firstlineno,
        module=getattr(function, "__module__", None),
        registry=getattr(function, "__globals__", {}).setdefault("__warningregistry__", {}),
    )
