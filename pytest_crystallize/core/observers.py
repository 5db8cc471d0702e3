"""Observers of a replicate's context: what a running step reads from it and does to it.

A step cache must know everything a step's output depends on and everything
it did besides returning, so that a later hit can be checked and replayed.
The context tells the observers active in the current asyncio task or thread
(a context variable, so two steps running concurrently in one replicate each
see only their own) about every read of a value, a replicate attribute, the
random generator, the metrics or the artifacts, and about every value it
records, artifact it stores and key it adds or overrides.

A context costs nothing while nobody observes it: it keeps a count of the
observers watching it and notifies only when that count is not zero. A leaf
module: the context imports it, never the other way round.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Final, Literal, Protocol

__all__ = [
    "MISSING",
    "OBSERVERS",
    "READ_ARTIFACTS",
    "READ_ATTRIBUTE",
    "READ_KEY",
    "READ_METRICS",
    "READ_RNG",
    "ContextObserver",
    "ReadKind",
    "active_observers",
    "notify_read",
]

#: What a read of an absent key sees (a read of absence is a dependency too).
MISSING: Final = object()

#: The kinds of read: a context value, a replicate attribute (``replicate``,
#: ``condition``, ``seed``, ``master_seed``, ``design``: what ``ctx.folds()`` reads), the random generator, the
#: metrics recorded so far, the artifacts stored so far.
ReadKind = Literal["key", "attribute", "rng", "metrics", "artifacts"]
READ_KEY: Final[ReadKind] = "key"
READ_ATTRIBUTE: Final[ReadKind] = "attribute"
READ_RNG: Final[ReadKind] = "rng"
READ_METRICS: Final[ReadKind] = "metrics"
READ_ARTIFACTS: Final[ReadKind] = "artifacts"


class ContextObserver(Protocol):
    """Told what happens to one context (``ctx``) while it is active."""

    @property
    def ctx(self) -> object:
        """The context observed; notifications about other contexts never reach it."""
        ...

    def read(self, kind: ReadKind, key: str, value: Any) -> None:
        """``key`` of ``kind`` was read and had ``value`` (:data:`MISSING` for an absent key)."""

    def recorded(self, name: str, value: float, tags: str | None) -> None:
        """A value of metric ``name`` was recorded, with ``tags`` as a JSON object string or None."""

    def artifact(self, name: str, data: bytes | str) -> None:
        """Artifact ``name`` was stored (or replaced)."""

    def assigned(self, key: str, value: Any, *, added: bool) -> None:
        """Context key ``key`` was added (``added``) or overridden."""


#: The observers of the running asyncio task or thread, innermost last.
OBSERVERS: ContextVar[tuple[ContextObserver, ...]] = ContextVar("pytest_crystallize_observers", default=())


def active_observers(ctx: object) -> list[ContextObserver]:
    """The observers of the current task or thread that watch ``ctx``."""
    return [observer for observer in OBSERVERS.get() if observer.ctx is ctx]


def notify_read(ctx: object, kind: ReadKind, key: str, value: Any) -> None:
    """Tell the observers of ``ctx`` that ``key`` of ``kind`` was read and had ``value``."""
    for observer in active_observers(ctx):
        observer.read(kind, key, value)
