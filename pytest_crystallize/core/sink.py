"""The run's columnar store of recorded values: one list per column, an append per value.

Every ``ctx.metrics.add`` and ``ctx.record`` of a run (or of one worker's
batch) appends here: condition code, replicate, metric code, value and tags,
each to its own list. A leaf module: contexts, batches, the runner and the
journal share it.
"""

from __future__ import annotations

__all__ = ["MetricSink"]


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
