"""Runner mode from async code: ``await arun_experiment(...)``.

:func:`~pytest_crystallize.core.scripting.run_experiment` already works inside
a running event loop (a notebook, an async test), but it blocks that loop
until every replicate is done. :func:`arun_experiment` runs it in a worker
thread instead (``asyncio.to_thread``, which carries the context variables
along), so the loop keeps serving other tasks meanwhile. The result is the
same object, with the same numbers, as a sync call with the same seed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_crystallize.core.scripting import run_experiment

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["arun_experiment"]


async def arun_experiment(function: Callable[..., Any], /, **options: Any) -> ExperimentResult:
    """Run ``function`` as an experiment without blocking the running event loop.

    Takes the options of :func:`~pytest_crystallize.core.scripting.run_experiment`
    and returns its result. ``async def`` experiments run on their own event
    loop in the worker thread.
    """
    if options.get("localns") is None and hasattr(sys, "_getframe"):
        # Annotations naming classes defined in the awaiting function resolve with its locals.
        options["localns"] = sys._getframe(1).f_locals
    return await asyncio.to_thread(run_experiment, function, **options)
