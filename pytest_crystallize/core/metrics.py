"""``ctx.metrics``: recording a replicate's numeric metrics (what counts as one: :mod:`~pytest_crystallize.core.sink`).

Recording is the replicate's :class:`~pytest_crystallize.core.sink.Recorder`,
which appends to the run's :class:`~pytest_crystallize.core.sink.MetricSink`
(``ctx.record`` with tags goes through it too); reading back this
replicate's values tells the context's observers, since a step that reads
earlier metrics depends on them.
"""

from __future__ import annotations

from pytest_crystallize.core.observers import READ_METRICS, notify_read
from pytest_crystallize.core.sink import Recorder

__all__ = ["Metrics"]


class Metrics(Recorder):
    """``ctx.metrics``: record numeric metrics of one replicate (:meth:`add`), and read them back."""

    __slots__ = ()

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
        pairs = self.recorded()
        if self._watched is not None:  # a step that reads earlier metrics depends on them
            notify_read(self._watched, READ_METRICS, "", pairs)
        return pairs
