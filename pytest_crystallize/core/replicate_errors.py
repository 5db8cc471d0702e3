"""What a replicate's failure becomes: a :class:`~pytest_crystallize.core.results.ReplicateError` of plain strings.

Made inside the worker that ran the replicate, so it crosses process
boundaries even when the exception class cannot be pickled. The traceback
shows the user's frames only, and the step (or datasource, evaluator) the
exception escaped from is named.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Final

from pytest_crystallize.core.pipeline import STEP_ATTRIBUTE
from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.timeouts import ReplicateTimeout, timeout_message

__all__ = ["replicate_error"]

_PACKAGE_DIR: Final = str(Path(__file__).resolve().parent.parent)


def _user_frames_only(exc: BaseException) -> str:
    """Format ``exc`` with our own frames removed, so the user's code shows."""
    formatted = traceback.TracebackException.from_exception(exc)
    pending = [formatted]
    while pending:
        current = pending.pop()
        kept = [f for f in current.stack if not (f.filename or "").startswith(_PACKAGE_DIR)]
        current.stack = traceback.StackSummary.from_list(kept)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return "".join(formatted.format())


def replicate_error(condition: str, replicate: int, exc: BaseException, timeout: float | None) -> ReplicateError:
    """The error of replicate ``replicate`` of ``condition``, which raised ``exc`` (``timeout``: the run's, if any)."""
    message = _safe_str(exc)
    if isinstance(exc, ReplicateTimeout):
        message = timeout_message(timeout, " and was stopped; the other replicates ran")
    return ReplicateError(
        condition=condition, replicate=replicate, error_type=type(exc).__name__,
        message=message, traceback=_user_frames_only(exc), step=_safe_step(exc),
    )


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the replicate's error
        return f"<{type(exc).__name__} whose str() failed>"


def _safe_step(exc: BaseException) -> str | None:
    step = getattr(exc, STEP_ATTRIBUTE, None)
    return step if isinstance(step, str) else None
