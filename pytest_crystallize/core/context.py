"""The per-replicate context: values, seed, random generator, metrics, artifacts.

A :class:`FrozenContext` is made for every replicate of every condition. Its
values come from the experiment and the condition's treatment; steps may add
new keys but never silently replace one (``override`` is the explicit escape
hatch). Metrics go straight into the run's columnar :class:`MetricSink`, so
recording a value costs an append, not a dict per value.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.defaults import DEFAULT_SEED
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.errors import ConfigurationError, ContextMutationError, MetricError

if TYPE_CHECKING:
    import numpy as np

    from pytest_crystallize.core.designs import Design

__all__ = [
    "CURRENT_CONTEXT",
    "Artifacts",
    "FrozenContext",
    "MetricSink",
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


class MetricSink:
    """Columnar store of every value recorded during one run (or one batch).

    Each recorded value appends one entry to five parallel lists. Owned and
    mutated by one runner or one worker batch; read once when the result is
    built.
    """

    __slots__ = ("condition", "metric", "metric_codes", "replicate", "tags", "value")

    def __init__(self) -> None:
        self.condition: list[int] = []
        self.replicate: list[int] = []
        self.metric: list[int] = []
        self.value: list[float] = []
        self.tags: list[str | None] = []
        self.metric_codes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.value)

    def append(
        self, condition: int, replicate: int, name: str, value: float, tags: str | None
    ) -> None:
        """Record one value; ``tags`` is a JSON object string or ``None``."""
        code = self.metric_codes.get(name)
        if code is None:
            code = self.metric_codes[name] = len(self.metric_codes)
        self.condition.append(condition)
        self.replicate.append(replicate)
        self.metric.append(code)
        self.value.append(value)
        self.tags.append(tags)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Metric names in code order."""
        return tuple(self.metric_codes)

    def drop_unfinished(self, condition: int, replicate: int) -> None:
        """Forget the values the replicate ``(condition, replicate)`` recorded: it did not finish.

        Its values are the newest ones (a sink is filled one replicate at a time).
        """
        keep = len(self.value)
        while keep and self.condition[keep - 1] == condition and self.replicate[keep - 1] == replicate:
            keep -= 1
        for column in (self.condition, self.replicate, self.metric, self.value, self.tags):
            del column[keep:]


def _as_number(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise :class:`MetricError` naming ``name``."""
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return float(value)  # type: ignore[arg-type]  # checked just above
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        # A 0-d numpy array: np.float32(1.5) arrives here on some versions.
        try:
            return float(value)  # type: ignore[arg-type]  # 0-d arrays convert
        except (TypeError, ValueError):
            pass
    msg = (
        f"metric {name!r} got a value of type {kind.__name__} ({value!r:.60}); "
        f"metrics must be real numbers (int, float, bool or a numpy scalar): "
        f"record a number, e.g. ctx.metrics.add({name!r}, float(x))"
    )
    raise MetricError(msg)


def _check_metric_name(name: object) -> str:
    if type(name) is not str or not name:
        msg = f"metric names must be non-empty strings, got {name!r}"
        raise MetricError(msg)
    return name


class Metrics:
    """``ctx.metrics``: record numeric metrics of one replicate."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: FrozenContext) -> None:
        self._ctx = ctx

    def add(self, name: str, value: float) -> None:
        """Record ``value`` for metric ``name`` in this replicate and condition."""
        ctx = self._ctx
        ctx._sink.append(
            ctx._condition_code, ctx._replicate, _check_metric_name(name),
            _as_number(name, value), None,
        )

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

    def _own(self) -> Iterator[tuple[str, float]]:
        ctx = self._ctx
        sink = ctx._sink
        names = sink.metric_names
        # Records of this replicate come after the sink's length at its start.
        for i in range(ctx._sink_start, len(sink)):
            if sink.condition[i] == ctx._condition_code and sink.replicate[i] == ctx._replicate:
                yield names[sink.metric[i]], sink.value[i]


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
        "_design",
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
        *,
        replicate: int,
        condition: str,
        condition_code: int,
        seeds: ReplicateSeeds,
        sink: MetricSink,
        step_hooks: Any = None,
        design: Design | None = None,
    ) -> None:
        self._values = values
        self._design = design
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

    def folds(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The replicate's ``(train_indices, test_indices)`` of ``n_samples`` items, under the design.

        With ``design=cv(k, repeats)``: fold ``replicate % k`` of repeat
        ``replicate // k``; with ``design=holdout(test_size)``: the
        replicate's random split. The same in every condition (see
        :func:`~pytest_crystallize.core.designs.replicate_split`).
        """
        from pytest_crystallize.core.designs import replicate_split

        return replicate_split(self._design, n_samples, self._replicate, self._seeds.master)

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
        encoded = None
        if tags:
            try:
                encoded = json.dumps(dict(tags), sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as exc:
                msg = f"tags of metric {name!r} must be JSON-serialisable: {exc}"
                raise MetricError(msg) from None
        self._sink.append(
            self._condition_code, self._replicate, _check_metric_name(name),
            _as_number(name, value), encoded,
        )

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
    return FrozenContext(
        dict(values or {}),
        replicate=replicate,
        condition=condition,
        condition_code=0,
        seeds=ReplicateSeeds(seed),
        sink=MetricSink(),
        design=design,
    )
