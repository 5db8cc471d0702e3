"""The per-replicate context: values, seed, random generator, metrics, artifacts.

A :class:`FrozenContext` is made for every replicate of every condition. Its
values come from the experiment and the condition's treatment; steps may add
new keys but never silently replace one (``override`` is the explicit escape
hatch). Metrics go straight into the run's columnar
:class:`~pytest_crystallize.core.sink.MetricSink`, so recording a value costs
a few appends, not a dict per value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.artifacts import Artifacts
from pytest_crystallize.core.columns import NO_TAGS
from pytest_crystallize.core.context_scope import ContextScope
from pytest_crystallize.core.defaults import DEFAULT_SEED
from pytest_crystallize.core.metrics import Metrics
from pytest_crystallize.core.observers import (
    MISSING,
    OBSERVERS,
    READ_ATTRIBUTE,
    READ_KEY,
    READ_RNG,
    ContextObserver,
    active_observers,
    notify_read,
)
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.core.sink import MetricSink
from pytest_crystallize.errors import ContextMutationError

if TYPE_CHECKING:
    import numpy as np

    from pytest_crystallize.core.designs import Design

__all__ = [
    "Artifacts",
    "FrozenContext",
    "standalone_context",
]

#: Keys every context answers without them being added: ``ctx.get("replicate")``
#: works as in the Crystallize feature guide.
BUILTIN_KEYS: Final = frozenset({"replicate", "condition", "seed"})

_MISSING: Final = MISSING




class FrozenContext:
    """The values, seed and recorders of one replicate of one condition.

    Read with ``ctx[key]``, ``ctx.get(key, default)`` and ``key in ctx``; add new
    keys with ``ctx.add``; ``ctx[key] = value`` raises
    :class:`~pytest_crystallize.errors.ContextMutationError`; ``override``
    replaces values on purpose. ``replicate``, ``condition`` and ``seed`` are
    read-only; ``rng`` is a numpy Generator seeded for this replicate.
    """

    __slots__ = (
        "_added",
        "_artifacts",
        "_metrics",
        "_replicate",
        "_rng",
        "_scope",
        "step_coroutines",
        "step_hooks",
        "watchers",
    )

    def __init__(self, scope: ContextScope, replicate: int) -> None:
        # What the condition's replicates share is one field: a context is made for every replicate,
        # and each field set costs.
        self._scope = scope
        self._replicate = replicate
        self._added: dict[str, Any] | None = None
        self._rng: np.random.Generator | None = None
        self._metrics = Metrics(scope.sink, scope.condition_code, replicate)
        self._artifacts: Artifacts | None = None
        #: How many observers watch this context (see :meth:`observed`, which alone changes it); 0: reads
        #: notify nobody. The recorder learns of it through ``Metrics.watch``.
        self.watchers = 0
        #: The run's step-hook caller, or None when no plugin watches steps (read by every step call).
        self.step_hooks = scope.step_hooks
        #: ``(step name, coroutine)`` of each ``async def`` step called with this context
        #: (None until one is): a sync replicate checks that each was awaited.
        self.step_coroutines: list[tuple[str, Any]] | None = None

    # -- identity ---------------------------------------------------------
    # The attributes read the fields directly: they are on every replicate's hot path.
    @property
    def replicate(self) -> int:
        """Index of this replicate, from 0."""
        if self.watchers:
            notify_read(self, READ_ATTRIBUTE, "replicate", self._replicate)
        return self._replicate

    @property
    def condition(self) -> str:
        """Name of this condition: ``"baseline"`` or a treatment's name."""
        if self.watchers:
            notify_read(self, READ_ATTRIBUTE, "condition", self._scope.condition)
        return self._scope.condition

    @property
    def seed(self) -> int:
        """The seed of this replicate, the same in every condition."""
        seed = self._scope.seeds[self._replicate]
        if self.watchers:
            notify_read(self, READ_ATTRIBUTE, "seed", seed)
        return seed

    @property
    def master_seed(self) -> int:
        """The experiment's master seed, from which every replicate seed derives."""
        if self.watchers:
            notify_read(self, READ_ATTRIBUTE, "master_seed", self._scope.seeds.master)
        return self._scope.seeds.master

    def attribute(self, name: str) -> Any:
        """``replicate``, ``condition``, ``seed``, ``master_seed`` or ``design``, unseen by observers."""
        if name == "replicate":
            return self._replicate
        if name == "condition":
            return self._scope.condition
        if name == "seed":
            return self._scope.seeds[self._replicate]
        if name == "master_seed":
            return self._scope.seeds.master
        if name == "design":  # what ctx.folds() splits by; the dataclass repr keeps every field exactly
            return repr(self._scope.design)
        msg = f"{name!r} is not a replicate attribute (replicate, condition, seed, master_seed, design)"
        raise AttributeError(msg)

    @property
    def rng(self) -> np.random.Generator:
        """A numpy Generator seeded with :attr:`seed` (made on first use)."""
        rng = self.generator()
        if self.watchers:
            notify_read(self, READ_RNG, "", rng)
        return rng

    def generator(self) -> np.random.Generator:
        """:attr:`rng`, unseen by observers."""
        if self._rng is None:
            import numpy as np

            self._rng = np.random.default_rng(self._scope.seeds[self._replicate])
        return self._rng

    def folds(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The replicate's ``(train_indices, test_indices)`` of ``n_samples`` items, under the design.

        With ``design=cv(k, repeats)``: fold ``replicate % k`` of repeat
        ``replicate // k``; with ``design=holdout(test_size)``: the
        replicate's random split. The same in every condition (see
        :func:`~pytest_crystallize.core.designs.replicate_split`).
        """
        from pytest_crystallize.core.designs import replicate_split

        if self.watchers:  # the split depends on these: a step cache must key by them
            for name in ("design", "replicate", "master_seed"):
                notify_read(self, READ_ATTRIBUTE, name, self.attribute(name))
        return replicate_split(self._scope.design, n_samples, self._replicate, self._scope.seeds.master)

    def recorded(self) -> tuple[tuple[str, float], ...]:
        """Every ``(name, value)`` recorded so far in this replicate, in order, unseen by observers."""
        return self._metrics.recorded()

    @property
    def watched(self) -> bool:
        """True while some observer watches this context (see :meth:`observed`)."""
        return self.watchers > 0

    @contextlib.contextmanager
    def observed(self, observer: ContextObserver) -> Iterator[None]:
        """Tell ``observer`` what this context is asked and told in this task or thread, until exit."""
        self.watchers += 1
        self._metrics.watch(self)
        token = OBSERVERS.set((*OBSERVERS.get(), observer))
        try:
            yield
        finally:
            OBSERVERS.reset(token)
            self.watchers -= 1
            if not self.watchers:
                self._metrics.watch(None)

    if TYPE_CHECKING:

        @property
        def metrics(self) -> Metrics:
            """Recorder of this replicate's metrics: ``ctx.metrics.add(name, value)``."""

    else:  # read by a C getter, not a Python function: steps read it for every value they record
        metrics = property(
            attrgetter("_metrics"), doc="Recorder of this replicate's metrics: ``ctx.metrics.add(name, value)``."
        )

    @property
    def artifacts(self) -> Artifacts:
        """Files this replicate's steps produce: ``ctx.artifacts.add(name, data)``."""
        if self._artifacts is None:
            self._artifacts = Artifacts(self)
        return self._artifacts

    def record(self, name: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        """Record ``value`` for metric ``name`` with optional ``tags``.

        Tags are stored with the value (as JSON) for later analysis; they must
        be JSON-serialisable.
        """
        if tags:
            # A dict of tags recorded before is found in the sink's trie, walked here: a call costs as
            # much as the walk. Anything else is coded by the sink (or refused, naming the metric).
            sink = self._scope.sink
            try:
                if type(tags) is not dict:  # another mapping, or not one: the sink tells
                    raise TypeError  # handled just below, as a set not seen before
                node = sink.tag_trie
                for key in tags:
                    tag_value = tags[key]
                    node = node[key][type(tag_value)][tag_value]
                tag = node[None]
            except (LookupError, TypeError):  # not seen before, or unhashable
                tag = sink.tags_code(name, tags)
            self._metrics.add(name, value, _tag=tag)
        else:
            self._metrics.add(name, value)

    def tell_recorded(self, name: str, value: float, tag: int) -> None:
        """Tell this context's observers that ``value`` (a float) was recorded for ``name`` with tag code ``tag``."""
        encoded = None if tag == NO_TAGS else self._scope.sink.tag_texts[tag]
        for observer in active_observers(self):
            observer.recorded(name, value, encoded)

    # -- values -------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            known = ", ".join(repr(k) for k in sorted(self.keys())) or "none"
            msg = f"context has no key {key!r} (known keys: {known})"
            raise KeyError(msg)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when it is absent."""
        added = self._added  # peek's lookup, inlined: this is the hot path of every step
        if added is not None and key in added:
            value = added[key]
        else:
            value = self._scope.values.get(key, _MISSING)
            if value is _MISSING and key in BUILTIN_KEYS:
                # ctx.get("replicate") is how datasources read their index: spared a call.
                value = self._replicate if key == "replicate" else self.attribute(key)
        if self.watchers:
            notify_read(self, READ_KEY, key, value)
        return default if value is _MISSING else value

    def fill(self, names: tuple[str, ...], into: dict[str, Any]) -> None:
        """Put the value of each of ``names`` that this context has into ``into``, unless already there.

        What ``get`` would give, for a step's keyword parameters: one call, not one per name.
        """
        if self.watchers or self._added is not None:
            for name in names:
                if name not in into:
                    value = self.get(name, _MISSING)
                    if value is not _MISSING:
                        into[name] = value
            return
        values = self._scope.values
        for name in names:
            if name not in into:
                value = values.get(name, _MISSING)
                if value is _MISSING and name in BUILTIN_KEYS:
                    value = self.attribute(name)
                if value is not _MISSING:
                    into[name] = value

    def peek(self, key: str, default: Any = None) -> Any:
        """:meth:`get`, unseen by observers (a cache checking its entries reads this way)."""
        added = self._added
        if added is not None and key in added:
            return added[key]
        value = self._scope.values.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key in BUILTIN_KEYS:
            return self.attribute(key)
        return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self.get(key, _MISSING) is not _MISSING

    def keys(self) -> set[str]:
        """Every key this context answers, built-in ones included."""
        keys = set(self._scope.values) | set(self._added or ()) | BUILTIN_KEYS
        if self.watchers:
            for key in keys:
                notify_read(self, READ_KEY, key, self.peek(key))
        return keys

    def as_dict(self) -> dict[str, Any]:
        """Return the user values (without the built-in keys) as a new dict."""
        values = {**self._scope.values, **(self._added or {})}
        if self.watchers:
            for key, value in values.items():
                notify_read(self, READ_KEY, key, value)
        return values

    def add(self, key: str, value: Any) -> None:
        """Add a new key; raise ContextMutationError if ``key`` exists."""
        if self.peek(key, _MISSING) is not _MISSING:
            raise ContextMutationError(key)
        if self._added is None:
            self._added = {}
        self._added[key] = value
        if self.watchers:
            for observer in active_observers(self):
                observer.assigned(key, value, added=True)

    def __setitem__(self, key: str, value: Any) -> None:
        if self.peek(key, _MISSING) is not _MISSING:
            raise ContextMutationError(key)
        msg = f"contexts are frozen: add the new key with ctx.add({key!r}, value), not ctx[{key!r}] = value"
        raise ContextMutationError(key, msg)

    def override(self, **values: Any) -> None:
        """Replace (or add) values on purpose: the explicit escape hatch."""
        for key in values:
            if key in BUILTIN_KEYS:
                msg = f"context key {key!r} is read-only: the runner sets it"
                raise ContextMutationError(key, msg)
        if self._added is None:
            self._added = {}
        self._added.update(values)
        if self.watchers:
            for observer in active_observers(self):
                for key, value in values.items():
                    observer.assigned(key, value, added=False)

    def __repr__(self) -> str:
        return (
            f"FrozenContext(condition={self._scope.condition!r}, replicate={self._replicate}, "
            f"values={self.as_dict()!r})"
        )


def standalone_context(
    values: Mapping[str, Any] | None = None,
    *,
    seed: int = DEFAULT_SEED,
    replicate: int = 0,
    condition: str = "baseline",
    design: Design | None = None,
) -> FrozenContext:
    """Return a context for running or unit-testing one step outside an experiment.

    ``ctx.metrics.as_dict()`` afterwards shows what the step recorded;
    with a ``design`` (``cv(...)``), ``ctx.folds(n)`` works as in a run.
    """
    clash = sorted(set(values or ()) & BUILTIN_KEYS)
    if clash:
        msg = f"{clash[0]!r} is a read-only context key; pass it as standalone_context({clash[0]}=...)"
        raise ContextMutationError(clash[0], msg)
    scope = ContextScope(dict(values or {}), condition, 0, ReplicateSeeds(seed), MetricSink(), design=design)
    return FrozenContext(scope, replicate)
