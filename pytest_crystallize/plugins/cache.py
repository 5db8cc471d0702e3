"""``CachePlugin``: keep the calls of ``@pipeline_step(cache=True)`` steps on disk and replay them.

A ``crystallize_step_call`` wrapper. For a cached step it computes the
call key (:mod:`~pytest_crystallize.core.cache.keys`) and looks for an
entry whose read set has the same values in this replicate's context. On a
hit the step does not run: what it recorded, stored and added to the
context is replayed and its output returned, so the result is the one a
cold run gives, value for value. On a miss the step runs under a
:class:`~pytest_crystallize.core.cache.trace.StepTrace` and the entry is
stored. Steps without ``cache=True`` pass straight through.

An input the cache cannot digest, or a context value the step read that it
cannot digest, is an error of the step (its replicate fails, saying how to
fix it). An output the cache cannot store (it cannot be pickled, or there
is no secret to sign the pickle) is not an error: the step's result stands,
uncached, with a CrystallizeWarning once per step. A cache the disk
refuses never fails a run either.

The pytest plugin registers it when a cached step exists (off with
``--crystallize-no-cache``); ``run_experiment(..., cache=...)`` does outside
pytest; or register one yourself with ``plugins=[CachePlugin(directory)]``.
It runs where the replicate runs, in worker processes too.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.cache.keys import call_key, step_folder
from pytest_crystallize.core.cache.secret import LocalSecret
from pytest_crystallize.core.cache.sizes import parse_size
from pytest_crystallize.core.cache.store import StepCacheStore
from pytest_crystallize.core.cache.trace import StepTrace, replay
from pytest_crystallize.core.defaults import CACHE_DIR, DEFAULT_CACHE_SIZE, DEFAULT_STORAGE
from pytest_crystallize.errors import CacheError, ConfigurationError, CrystallizeWarning
from pytest_crystallize.hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from pytest_crystallize.core.cache.store import Hit
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.pipeline import StepCall

__all__ = ["DEFAULT_DIRECTORY", "CachePlugin"]

#: Where the cache lives when no directory is given: ``cache/`` in the default store.
DEFAULT_DIRECTORY: Final = Path(DEFAULT_STORAGE) / CACHE_DIR


class CachePlugin:
    """Keep and replay the calls of ``@pipeline_step(cache=True)`` steps in ``directory``.

    ``directory`` defaults to ``.crystallize/cache`` (relative paths from the
    working directory; the pytest plugin passes the store's). ``max_size``
    (bytes, or text such as ``"2GiB"``) bounds the entries: past it, the
    least recently used are removed. ``secret`` names the file of the key
    that signs pickled values (default: ``$CRYSTALLIZE_CACHE_SECRET``, else
    in the user's config directory). :attr:`store` counts this process's
    hits and misses.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, max_size: int | str = DEFAULT_CACHE_SIZE,
        *, secret: str | os.PathLike[str] | None = None,
    ) -> None:
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            msg = f"CachePlugin: directory must be a path or None, got {type(directory).__name__} {directory!r:.40}"
            raise ConfigurationError(msg)
        if isinstance(max_size, bool) or not isinstance(max_size, (int, str)):
            msg = f"CachePlugin: max_size must be a number of bytes or a size such as '2GiB', got {max_size!r}"
            raise ConfigurationError(msg)
        limit = parse_size(str(max_size), "CachePlugin max_size")
        root = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        self.secret = LocalSecret(None if secret is None else Path(secret))
        self.store = StepCacheStore(root.absolute(), limit, self.secret)
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"CachePlugin({str(self.store.root)!r}, max_size={self.store.max_bytes})"

    @hookimpl(wrapper=True)
    def crystallize_step_call(self, experiment: Experiment, call: StepCall) -> Generator[None, Any, Any]:
        """Replay a cached call, or run it traced and keep it (steps without ``cache=True`` pass through)."""
        ctx = call.ctx
        if not call.step.cache or ctx is None:
            return (yield)
        folder, key = step_folder(call.step), call_key(call)
        hit = self.store.lookup(folder, key, ctx)
        if hit is not None:
            if call.step.is_async:
                call.supply(None)
                ready = yield
                ready.close()  # the default's stand-in, never awaited: the replay is awaited instead
                return self._replayed(hit, call)
            call.supply(replay(hit.manifest, hit.parts, call, hit.reads))
            return (yield)
        trace = StepTrace(ctx)
        if call.step.is_async:
            awaitable = yield
            return self._traced(awaitable, trace, call, folder, key)
        with ctx.observed(trace):
            output = yield
        self._keep(trace, call, output, folder, key)
        return output

    async def _replayed(self, hit: Hit, call: StepCall) -> Any:
        return replay(hit.manifest, hit.parts, call, hit.reads)

    async def _traced(self, awaitable: Awaitable[Any], trace: StepTrace, call: StepCall, folder: str, key: str) -> Any:
        with trace.ctx.observed(trace):
            output = await awaitable
        self._keep(trace, call, output, folder, key)
        return output

    def _keep(self, trace: StepTrace, call: StepCall, output: Any, folder: str, key: str) -> None:
        """Store the call; an output that cannot be stored, or a refusing disk, leaves it uncached."""
        trace.check(call)  # an undigestable read is the step's error
        parts: dict[str, bytes] = {}
        try:
            manifest = trace.effects(call, output, parts)
            self.store.store(folder, key, trace.reads, manifest, parts)
        except CacheError as exc:
            reason = exc if self.secret.problem is None else f"{exc} ({self.secret.problem})"
            self._warn(call, f"its output is not cached: {reason}")
        except OSError as exc:
            self._warn(call, f"the cache in {str(self.store.root)!r} cannot be written ({exc}); nothing is cached")

    def _warn(self, call: StepCall, problem: str) -> None:
        if call.step.name in self._warned:
            return
        self._warned.add(call.step.name)
        warnings.warn(f"step {call.step.name!r}: {problem}", CrystallizeWarning, stacklevel=2)
