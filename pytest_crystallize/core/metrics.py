"""``ctx.metrics``: recording a replicate's numeric metrics (what counts as one: :mod:`~pytest_crystallize.core.sink`).

Recording goes through the context (:meth:`FrozenContext.record`), which
appends to the run's :class:`~pytest_crystallize.core.sink.MetricSink`;
reading back this replicate's values tells the context's observers, since a
step that reads earlier metrics depends on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_crystallize.core.observers import READ_METRICS, notify_read

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.sink import MetricSink

__all__ = ["Metrics"]


class Metrics:
    """``ctx.metrics``: record numeric metrics of one replicate."""

    __slots__ = ("_ctx", "_sink")

    def __init__(self, ctx: FrozenContext, sink: MetricSink) -> None:
        self._ctx = ctx
        # The context's sink, bound once: ``add`` then needs one call, for speed.
        self._sink = sink

    def add(self, name: str, value: float) -> None:
        """Record ``value`` for metric ``name`` in this replicate and condition."""
        ctx = self._ctx
        if ctx.watchers:  # observers see each value: through the context
            ctx.record(name, value)
        else:
            self._sink.add(ctx, name, value)

    def get(self, name: str) -> tuple[float, ...]:
        """Return the values of ``name`` recorded so far in this replicate."""
        return tuple(values for metric, values in self._read() if metric == name)

    def as_dict(self) -> dict[str, list[float]]:
        """Return every metric recorded so far in this replicate, by name."""
        out: dict[str, list[float]] = {}
        for metric, value in self._read():
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

    def _read(self) -> tuple[tuple[str, float], ...]:
        ctx = self._ctx
        pairs = ctx.recorded()
        if ctx.watched:
            notify_read(ctx, READ_METRICS, "", pairs)
        return pairs
