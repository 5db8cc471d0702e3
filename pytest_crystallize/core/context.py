"""The per-replicate context: values, seed, random generator, metrics, artifacts.

A :class:`FrozenContext` is made for every replicate of every condition. Its
values come from the experiment and the condition's treatment; steps may add
new keys but never silently replace one (``override`` is the explicit escape
hatch). Metrics go straight into the run's columnar
:class:`~pytest_crystallize.core.sink.MetricSink`, so recording a value costs
a few appends, not a dict per value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.defaults import DEFAULT_SEED
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.core.sink import MetricSink
from pytest_crystallize.errors import ConfigurationError, ContextMutationError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CURRENT_CONTEXT",
    "Artifacts",
    "FrozenContext",
    "Metrics",
    "standalone_context",
]

#: Keys every context answers without them being added: ``ctx.get("replicate")``
#: works as in the Crystallize feature guide.
BUILTIN_KEYS: Final = frozenset({"replicate", "condition", "seed"})

_MISSING: Final = object()

#: The context of the replicate running in this thread or task; lets a step
#: called without ``ctx`` (a nested step) find it. Set by the runner.
CURRENT_CONTEXT: ContextVar[FrozenContext | None] = ContextVar(
    "pytest_crystallize_context", default=None
)


class Metrics:
    """``ctx.metrics``: record numeric metrics of one replicate."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: FrozenContext) -> None:
        self._ctx = ctx

    def add(self, name: str, value: float) -> None:
        """Record ``value`` for metric ``name`` in this replicate and condition."""
        ctx = self._ctx
        ctx._sink.record(ctx, ctx._condition_code, ctx._replicate, name, value, None)

    def get(self, name: str) -> tuple[float, ...]:
        """Return the values of ``name`` recorded so far in this replicate."""
        return tuple(values for metric, values in self._own() if metric == name)

    def as_dict(self) -> dict[str, list[float]]:
        """Return every metric recorded so far in this replicate, by name."""
        out: dict[str, list[float]] = {}
        for metric, value in self._own():
            out.setdefault(metric, []).append(value)
        return out

    def __getitem__(self, name: str) -> tuple[float, ...]:
        values = self.get(name)
        if not values:
            msg = f"no value of metric {name!r} was recorded in this replicate"
            raise KeyError(msg)
        return values

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get(name))

    def _own(self) -> list[tuple[str, float]]:
        ctx = self._ctx
        # Records of this replicate come after the sink's length at its start.
        return ctx._sink.values_of(ctx._condition_code, ctx._replicate, ctx._sink_start)


def check_artifact_name(name: object) -> str:
    """Return ``name`` if it is a safe relative path, else raise ConfigurationError."""
    if not isinstance(name, str) or not name:
        msg = f"artifact names must be non-empty strings, got {name!r}"
        raise ConfigurationError(msg)
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        msg = f"artifact name {name!r} is an absolute path: use a relative name such as 'model.json'"
        raise ConfigurationError(msg)
    if ".." in posix.parts or ".." in windows.parts:
        msg = f"artifact name {name!r} would escape the artifact directory: remove '..'"
        raise ConfigurationError(msg)
    return name


class Artifacts(Mapping[str, "bytes | str"]):
    """``ctx.artifacts``: named files a step produces (bytes or text).

    Plugins such as ``ArtifactPlugin`` write them to disk after each step.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, bytes | str] = {}

    def add(self, name: str, data: bytes | str) -> None:
        """Store ``data`` under the relative file name ``name``."""
        if not isinstance(data, (bytes, str)):
            msg = (
                f"artifact {name!r} must be bytes or str, got {type(data).__name__}: "
                f"serialise it first (e.g. json.dumps(obj) or obj.to_parquet(buffer))"
            )
            raise ConfigurationError(msg)
        self._items[check_artifact_name(name)] = data

    def __getitem__(self, name: str) -> bytes | str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


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
        "_condition",
        "_condition_code",
        "_metrics",
        "_replicate",
        "_rng",
        "_seeds",
        "_sink",
        "_sink_start",
        "_values",
        "step_coroutines",
        "step_hooks",
    )

    def __init__(
        self,
        values: Mapping[str, Any],
        replicate: int,
        condition: str,
        condition_code: int,
        seeds: ReplicateSeeds,
        sink: MetricSink,
        step_hooks: Any = None,
    ) -> None:
        self._values = values
        self._added: dict[str, Any] | None = None
        self._replicate = replicate
        self._condition = condition
        self._condition_code = condition_code
        self._seeds = seeds
        self._sink = sink
        self._sink_start = len(sink)
        self._rng: np.random.Generator | None = None
        self._metrics: Metrics | None = None
        self._artifacts: Artifacts | None = None
        #: The run's step-hook caller, or None when no plugin watches steps.
        self.step_hooks = step_hooks
        #: ``(step name, coroutine)`` of each ``async def`` step called with this context
        #: (None until one is): a sync replicate checks that each was awaited.
        self.step_coroutines: list[tuple[str, Any]] | None = None

    # -- identity ---------------------------------------------------------
    @property
    def replicate(self) -> int:
        """Index of this replicate, from 0."""
        return self._replicate

    @property
    def condition(self) -> str:
        """Name of this condition: ``"baseline"`` or a treatment's name."""
        return self._condition

    @property
    def seed(self) -> int:
        """The seed of this replicate, the same in every condition."""
        return self._seeds[self._replicate]

    @property
    def master_seed(self) -> int:
        """The experiment's master seed, from which every replicate seed derives."""
        return self._seeds.master

    @property
    def rng(self) -> np.random.Generator:
        """A numpy Generator seeded with :attr:`seed` (made on first use)."""
        if self._rng is None:
            import numpy as np

            self._rng = np.random.default_rng(self.seed)
        return self._rng

    @property
    def metrics(self) -> Metrics:
        """Recorder of this replicate's metrics: ``ctx.metrics.add(name, value)``."""
        if self._metrics is None:
            self._metrics = Metrics(self)
        return self._metrics

    @property
    def artifacts(self) -> Artifacts:
        """Files this replicate's steps produce: ``ctx.artifacts.add(name, data)``."""
        if self._artifacts is None:
            self._artifacts = Artifacts()
        return self._artifacts

    def record(self, name: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        """Record ``value`` for metric ``name`` with optional ``tags``.

        Tags are stored with the value (as JSON) for later analysis; they must
        be JSON-serialisable.
        """
        self._sink.record(self, self._condition_code, self._replicate, name, value, tags)

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
        added = self._added
        if added is not None and key in added:
            return added[key]
        value = self._values.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key in BUILTIN_KEYS:
            return getattr(self, key)
        return default

    def __contains__(self, key: object) -> bool:
        return (
            (self._added is not None and key in self._added)
            or key in self._values
            or key in BUILTIN_KEYS
        )

    def keys(self) -> set[str]:
        """Every key this context answers, built-in ones included."""
        return set(self._values) | set(self._added or ()) | BUILTIN_KEYS

    def as_dict(self) -> dict[str, Any]:
        """Return the user values (without the built-in keys) as a new dict."""
        return {**self._values, **(self._added or {})}

    def add(self, key: str, value: Any) -> None:
        """Add a new key; raise ContextMutationError if ``key`` exists."""
        if key in self:
            raise ContextMutationError(key)
        if self._added is None:
            self._added = {}
        self._added[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self:
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

    def __repr__(self) -> str:
        return (
            f"FrozenContext(condition={self._condition!r}, replicate={self._replicate}, "
            f"values={self.as_dict()!r})"
        )


def standalone_context(
    values: Mapping[str, Any] | None = None,
    *,
    seed: int = DEFAULT_SEED,
    replicate: int = 0,
    condition: str = "baseline",
) -> FrozenContext:
    """Return a context for running or unit-testing one step outside an experiment.

    ``ctx.metrics.as_dict()`` afterwards shows what the step recorded.
    """
    clash = sorted(set(values or ()) & BUILTIN_KEYS)
    if clash:
        msg = f"{clash[0]!r} is a read-only context key; pass it as standalone_context({clash[0]}=...)"
        raise ContextMutationError(clash[0], msg)
    return FrozenContext(
        dict(values or {}),
        replicate=replicate,
        condition=condition,
        condition_code=0,
        seeds=ReplicateSeeds(seed),
        sink=MetricSink(),
    )
