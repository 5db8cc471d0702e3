"""One-sample summaries: size, mean, spread and an interval of the mean (t, or Wilson for 0/1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_crystallize.errors import StatisticsError

from ._binary import is_binary, wilson_interval
from ._inputs import as_values

__all__ = ["Summary", "describe", "t_quantile"]


def t_quantile(level: float, df: float) -> float:
    """Return the two-sided ``level`` critical value of Student's t with ``df`` degrees."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    return float(stats.t.ppf(0.5 + level / 2.0, df))


@dataclass(frozen=True, slots=True)
class Summary:
    """Size, mean, standard deviation and confidence interval of one sample.

    ``std`` uses ``ddof=1`` and is nan for a single value. For 0/1 values the
    interval is the Wilson score interval of the proportion (``method="wilson"``);
    otherwise the ``confidence`` t-interval of the mean (nan for a single value, zero width
    for a constant sample).
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    method: str = "t"

    def to_dict(self) -> dict[str, str | float | int | None]:
        """Plain JSON-able fields; nan and inf become ``None``."""
        return {
            "n": self.n,
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "confidence": self.confidence,
            "method": self.method,
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def describe(values: object, *, confidence: float = 0.95, binary: bool | None = None) -> Summary:
    """Summarise one sample of finite values.

    Args:
        values: one-dimensional numbers (one per replicate).
        confidence: level of the two-sided interval of the mean.
        binary: whether the metric is a 0/1 outcome (Wilson interval), as
            :func:`binary_outcome` decides over every condition; ``None``
            judges this sample alone (all 0/1 values). A caller summarising
            one condition of several should pass it: a baseline of zeros is
            no proportion when the treatment recorded 3.

    Returns:
        A :class:`Summary`.

    Raises:
        StatisticsError: no values, non-finite values (``side`` is
            ``"values"`` and ``positions`` lists them), or a confidence level
            outside (0, 1).

    """
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must lie strictly between 0 and 1, got {confidence!r}"
        raise StatisticsError(msg)
    array = as_values(values, "values")
    n = int(array.size)
    if n == 0:
        msg = "cannot describe an empty sample: at least one value is needed"
        raise StatisticsError(msg, side="values")
    mean = float(np.mean(array))
    if not math.isfinite(mean):
        positions = tuple(int(p) for p in np.flatnonzero(~np.isfinite(array)))
        msg = (
            f"values contain {len(positions)} non-finite value(s) (nan or inf) at "
            f"position(s) {list(positions[:10])}: drop or fix them before describing"
        )
        raise StatisticsError(msg, side="values", positions=positions)
    nan = float("nan")
    centred = array - mean
    std = math.sqrt(float(np.dot(centred, centred)) / (n - 1)) if n > 1 else nan
    if binary is None:
        binary = is_binary(array)
    if binary and is_binary(array):
        # A proportion: the t-interval can leave [0, 1] and fails at 0 or n successes.
        low, high = wilson_interval(int(array.sum()), n, confidence)
        return Summary(n, mean, std, low, high, confidence, method="wilson")
    if n < 2:
        return Summary(n, mean, nan, nan, nan, confidence)
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, confidence)
