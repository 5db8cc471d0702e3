"""Power and replicates needed (placeholder until phase 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._inputs import Samples

__all__ = ["power_and_replicates"]


class _NullLike(Protocol):
    @property
    def delta(self) -> float: ...
    @property
    def alternative(self) -> str: ...


def power_and_replicates(
    family: str, samples: Samples, nulls: Sequence[_NullLike], alpha: float, mde: float | None
) -> tuple[float, int | None]:
    """Power at ``mde`` and replicates per condition for 80% power."""
    del family, samples, nulls, alpha, mde
    return float("nan"), None
