"""Cache keys of step calls: what a call was given, and what it read while it ran.

A key has two halves. The *call key* is known before the step runs: the
step's identity (module, qualified name, step name), the fingerprint of its
code (with its closure and defaults), and a content digest of its input
data and keyword arguments (those filled from the context included), or of
what the step's ``cache_key`` returns for them.

What the step reads from the context is known only once it ran: the values
of context keys, replicate attributes (``condition``, ``seed``...), the
random generator's state, earlier metrics or artifacts. A stored entry keeps
that *read set*; a later call with the same call key recomputes each read
set's values from its own context and finds the entry whose values match.
So a treatment that changes a value the step reads misses, and one that
changes only values it never reads shares the baseline's entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.cache.digests import digest_of
from pytest_crystallize.core.observers import (
    MISSING,
    READ_ARTIFACTS,
    READ_ATTRIBUTE,
    READ_KEY,
    READ_METRICS,
    READ_RNG,
    ReadKind,
)
from pytest_crystallize.errors import CacheError, UndigestableError

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.pipeline import PipelineStep, StepCall

__all__ = ["KEY_VERSION", "Read", "call_key", "entry_key", "read_digest", "read_value", "reads_id", "step_folder"]

#: Changes whenever what a key covers changes, so old entries are never matched.
KEY_VERSION: Final = "crystallize-step-cache-2"
_READ_KINDS: Final[tuple[ReadKind, ...]] = (READ_KEY, READ_ATTRIBUTE, READ_RNG, READ_METRICS, READ_ARTIFACTS)
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.=-]+")


@dataclass(frozen=True, slots=True, order=True)
class Read:
    """One thing a step read: a context key, a replicate attribute, the generator, the metrics or artifacts."""

    kind: ReadKind
    key: str

    @classmethod
    def from_json(cls, data: object) -> Read | None:
        """The read ``[kind, key]`` of a read-set file, or None if it is not one."""
        if isinstance(data, list) and len(data) == 2 and data[0] in _READ_KINDS and isinstance(data[1], str):
            return cls(data[0], data[1])
        return None


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def step_folder(step: PipelineStep) -> str:
    """A directory name for ``step``'s entries: its readable name and a hash of its identity."""
    readable = _UNSAFE.sub("_", step.name)[:40].strip("._") or "step"
    return f"{readable}-{_hash(_identity(step))[:10]}"


def _identity(step: PipelineStep) -> str:
    function = step.function
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}:{step.name}"


def call_key(call: StepCall) -> str:
    """The call key of ``call``: step identity, code, and input. Raises CacheError naming what has no digest."""
    step = call.step
    try:
        code = digest_of(step.function, "the step's function")
        if step.cache_key is not None:
            positional = (call.data,) if step.takes_data else ()
            described = step.cache_key(*positional, **call.kwargs)
            inputs = ["cache_key", digest_of(described, "what its cache_key returned")]
        else:
            inputs = ["data", digest_of(call.data, "its data") if step.takes_data else "-"]
            for name in sorted(call.kwargs):
                inputs += [name, digest_of(call.kwargs[name], f"its argument {name!r}")]
    except UndigestableError as exc:
        msg = (
            f"step {step.name!r} cannot be cached: {exc.path}, of type {exc.type_name}, has no digest the "
            f"cache can key it by. Give the step cache_key=, a function called like the step (without ctx) that "
            f"returns what identifies its input (numbers, strings, numpy arrays, pandas or pyarrow tables, "
            f"containers of them), or give that class a __crystallize_digest__() method"
        )
        raise CacheError(msg) from None
    return _hash(KEY_VERSION, _identity(step), code, *inputs)


def reads_id(reads: Sequence[Read]) -> str:
    """The id of a read set (its reads in sorted order)."""
    return _hash(*(f"{read.kind}:{read.key}" for read in sorted(reads)))[:24]


def entry_key(call: str, reads: str, digests: Sequence[str]) -> str:
    """The key of the entry of call key ``call`` whose read set ``reads`` had values of ``digests``."""
    return _hash(call, reads, *digests)


def read_value(ctx: FrozenContext, read: Read) -> Any:
    """The current value of ``read`` in ``ctx``, read without telling observers."""
    if read.kind == READ_KEY:
        return ctx.peek(read.key, MISSING)
    if read.kind == READ_ATTRIBUTE:
        return ctx.attribute(read.key)
    if read.kind == READ_RNG:
        return ctx.generator()
    if read.kind == READ_METRICS:
        return ctx.recorded()
    return ctx.artifacts.snapshot()


def read_digest(read: Read, value: Any) -> str:
    """The digest of what ``read`` saw; raises UndigestableError naming the context key."""
    if value is MISSING:
        return "missing"
    where = f"context value {read.key!r}" if read.kind == READ_KEY else f"ctx.{read.key or read.kind}"
    return digest_of(value, where)
