"""What one step call read and did, as a cache stores it, and replaying it on a hit.

A :class:`StepTrace` observes the replicate's context while the step runs
(:meth:`FrozenContext.observed`): the first value of everything it reads,
and every value it records (with tags), artifact it stores and key it adds
or overrides. Nested steps run under their caller's trace too, so a caller's
entry covers them. :meth:`StepTrace.effects` turns that and the step's
return value into the JSON manifest and parts of an entry;
:func:`replay` does it all again on a hit, in the same order, so a run with
a warm cache records exactly what a cold one does, and the callers' traces
see the replayed reads and records as if the step had run.

Random generators are state, not values: when the step drew from
``ctx.rng`` (or from a Generator it was passed), the state it left is
stored and restored on a hit, so later draws are the same.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from pytest_crystallize.core.cache.codec import decode, encode
from pytest_crystallize.core.cache.keys import Read, read_digest
from pytest_crystallize.core.observers import READ_ARTIFACTS, READ_KEY, READ_METRICS, READ_RNG, ReadKind, notify_read
from pytest_crystallize.errors import CacheError, UndigestableError

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.pipeline import StepCall

__all__ = ["StepTrace", "replay"]


class StepTrace:
    """Observer of one step call's context (see the module docstring). Lives for one call."""

    __slots__ = ("_written", "artifacts", "assignments", "ctx", "failure", "reads", "records")

    def __init__(self, ctx: FrozenContext) -> None:
        self.ctx = ctx
        #: The digest of each thing read, as first seen.
        self.reads: dict[Read, str] = {}
        self.records: list[tuple[str, float, str | None]] = []
        self.artifacts: dict[str, bytes | str] = {}
        self.assignments: list[tuple[str, Any, bool]] = []
        #: The first read whose value has no digest: the call cannot be stored.
        self.failure: UndigestableError | None = None
        self._written: set[str] = set()

    def read(self, kind: ReadKind, key: str, value: Any) -> None:
        """Keep the digest of the first value of each read, except the step's own writes."""
        read = Read(kind, key)
        if read in self.reads or (kind == READ_KEY and key in self._written):
            return
        if kind == READ_METRICS and self.records:  # what was there before the step: not its own records
            value = value[: len(value) - len(self.records)]
        elif kind == READ_ARTIFACTS:
            value = {name: data for name, data in value.items() if name not in self.artifacts}
        try:
            self.reads[read] = read_digest(read, value)
        except UndigestableError as exc:
            self.failure = self.failure or exc

    def recorded(self, name: str, value: float, tags: str | None) -> None:
        """Keep a recorded value."""
        self.records.append((name, value, tags))

    def artifact(self, name: str, data: bytes | str) -> None:
        """Keep a stored artifact (the last version of each name)."""
        self.artifacts[name] = data

    def assigned(self, key: str, value: Any, *, added: bool) -> None:
        """Keep a context key the step added or overrode."""
        self.assignments.append((key, value, added))
        self._written.add(key)

    def check(self, call: StepCall) -> None:
        """Raise CacheError if the step read a value the cache cannot digest (the call cannot be keyed)."""
        if self.failure is not None:
            msg = (
                f"step {call.step.name!r} cannot be cached: it read {self.failure.path}, of type "
                f"{self.failure.type_name}, which has no digest the cache can key it by. Pass it to the step as "
                f"an argument and give the step cache_key= (called like the step, returning what identifies "
                f"its input), or give that class a __crystallize_digest__() method"
            )
            raise CacheError(msg)

    def effects(self, call: StepCall, output: Any, parts: dict[str, bytes]) -> dict[str, Any]:
        """The manifest of an entry: the reads, the output and everything the step did, as JSON nodes.

        Raises CacheError when a value cannot be stored (it cannot be pickled).
        """
        reads = sorted(self.reads)
        return {
            "step": call.step.name,
            "reads": [[read.kind, read.key] for read in reads],
            "output": encode(output, parts),
            "records": [[name, encode(value, parts), tags] for name, value, tags in self.records],
            "artifacts": [[name, encode(data, parts)] for name, data in self.artifacts.items()],
            "assigned": [[key, added, encode(value, parts)] for key, value, added in self.assignments],
            "generators": [[where, encode(state, parts)] for where, state in self._generators(call)],
        }

    def _generators(self, call: StepCall) -> list[tuple[list[str], Any]]:
        """Where the step's random generators are, with the state the step left them in."""
        np = sys.modules.get("numpy")
        if np is None:
            return []
        found: list[tuple[list[str], Any]] = []
        if Read(READ_RNG, "") in self.reads:
            found.append((["rng"], self.ctx.generator().bit_generator.state))
        if isinstance(call.data, np.random.Generator):
            found.append((["data"], call.data.bit_generator.state))
        found += [
            (["argument", name], value.bit_generator.state)
            for name, value in call.kwargs.items() if isinstance(value, np.random.Generator)
        ]
        return found


def replay(
    manifest: dict[str, Any], parts: dict[str, bytes], call: StepCall, reads: dict[Read, Any]
) -> Any:
    """Do again what the stored call did, in ``call``'s context, and return its output.

    ``reads`` are the values the entry was matched with: the callers' traces
    are told of them, then of each record, artifact and context key, in order.
    """
    ctx = call.ctx
    if ctx is None:  # not reached: the cache only stores calls with a context
        msg = f"step {call.step.name!r}: a cached call needs a context"
        raise CacheError(msg)
    if ctx.watched:
        for read, value in reads.items():
            notify_read(ctx, read.kind, read.key, value)
    for name, value, tags in manifest["records"]:
        ctx.record(name, decode(value, parts), None if tags is None else json.loads(tags))
    for name, data in manifest["artifacts"]:
        ctx.artifacts.add(name, decode(data, parts))
    for key, added, value in manifest["assigned"]:
        if added:
            ctx.add(key, decode(value, parts))
        else:
            ctx.override(**{key: decode(value, parts)})
    for where, state in manifest["generators"]:
        _generator(call, where).bit_generator.state = decode(state, parts)
    return decode(manifest["output"], parts)


def _generator(call: StepCall, where: list[str]) -> Any:
    if where == ["rng"] and call.ctx is not None:
        return call.ctx.generator()
    if where == ["data"]:
        return call.data
    return call.kwargs[where[1]]
