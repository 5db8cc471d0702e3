"""Checking and preparing the two samples a comparison works on.

Everything the tests need about the data is computed here once (sizes,
means, variances, paired differences) so the hot path of a comparison makes a
single pass of numpy reductions over a million values, not one per test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from pytest_crystallize.core.vocabulary import BETTER, DIRECTIONS, NAN_POLICIES
from pytest_crystallize.errors import StatisticsError

__all__ = [
    "BETTER",
    "DIRECTIONS",
    "NAN_POLICIES",
    "Samples",
    "as_values",
    "prepare",
]


_SHOWN_POSITIONS = 10


@dataclass(frozen=True, slots=True)
class Samples:
    """Two finite samples with their moments, ready for a test.

    ``differences`` (treatment minus baseline, element by element) is set only
    when the samples are paired; ``mean_diff``/``var_diff`` are then its mean
    and variance, otherwise nan. Variances use ``ddof=1`` and are nan below two
    values.
    """

    baseline: np.ndarray
    treatment: np.ndarray
    differences: np.ndarray | None
    mean_baseline: float
    mean_treatment: float
    var_baseline: float
    var_treatment: float
    mean_diff: float
    var_diff: float

    @property
    def n_baseline(self) -> int:
        """Number of baseline values."""
        return int(self.baseline.size)

    @property
    def n_treatment(self) -> int:
        """Number of treatment values."""
        return int(self.treatment.size)

    @property
    def paired(self) -> bool:
        """Whether element i of both samples belongs to the same replicate."""
        return self.differences is not None

    def shifted(self, delta: float) -> Samples:
        """Return these samples with ``delta`` subtracted from every treatment value.

        Testing "difference = delta" is testing "difference = 0" on the
        shifted samples (a location-shift model); that is how margins reach
        every continuous test.
        """
        if delta == 0.0:
            return self
        differences = None if self.differences is None else self.differences - delta
        return replace(
            self,
            treatment=self.treatment - delta,
            differences=differences,
            mean_treatment=self.mean_treatment - delta,
            mean_diff=self.mean_diff - delta,
        )


def as_values(values: object, side: str) -> np.ndarray:
    """``values`` as a one-dimensional float64 array, or a StatisticsError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        msg = f"{side} values cannot be read as numbers ({exc}): pass a sequence or array of floats"
        raise StatisticsError(msg, side=side) from exc
    if array.ndim != 1:
        msg = (
            f"{side} values must be one-dimensional, got shape {array.shape}: "
            "pass one value per replicate (flatten or aggregate first)"
        )
        raise StatisticsError(msg, side=side)
    return array


def _mean_var(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float(np.mean(values))
    if n < 2:
        return mean, float("nan")
    centred = values - mean
    var = float(np.dot(centred, centred)) / (n - 1)
    return mean, var


#: Spread below this fraction of the data's magnitude is floating-point noise.
_ROUNDING: Final = 1e-12


def _snap_rounding_noise(
    differences: np.ndarray, mean: float, var: float, scale: float
) -> tuple[np.ndarray, float]:
    """Treat paired differences as constant when their spread is rounding noise.

    ``(x + 0.5) - x`` is not exactly 0.5 for every float ``x``: a treatment that
    shifts every replicate by a constant would otherwise give a t statistic of
    ~1e16 and an effect size to match. Spread below ``_ROUNDING`` times the
    data's magnitude is snapped to a constant, so the no-variation rules apply.
    """
    tolerance = _ROUNDING * max(scale, abs(mean))
    if differences.size < 2 or not var <= tolerance**2:
        return differences, var
    if float(differences.max() - differences.min()) > 2 * tolerance:
        return differences, var
    return np.full_like(differences, mean), 0.0


def _bad_positions(values: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isfinite(values))


def _raise_non_finite(side: str, positions: np.ndarray) -> None:
    shown = ", ".join(str(int(p)) for p in positions[:_SHOWN_POSITIONS])
    more = f" and {positions.size - _SHOWN_POSITIONS} more" if positions.size > _SHOWN_POSITIONS else ""
    msg = (
        f"{side} has {positions.size} non-finite value(s) (nan or inf) at "
        f"position(s) {shown}{more}: a statistical test needs finite numbers; "
        "fix the metric, or pass nan_policy='omit' to drop them"
    )
    raise StatisticsError(msg, side=side, positions=tuple(int(p) for p in positions))


def prepare(baseline: object, treatment: object, *, paired: bool, nan_policy: str) -> Samples:
    """Validate both samples, apply ``nan_policy`` and compute their moments.

    Raises:
        StatisticsError: unreadable or multi-dimensional values, unequal
            lengths when paired, non-finite values under ``nan_policy="raise"``,
            or an unknown ``nan_policy``.

    """
    if nan_policy not in NAN_POLICIES:
        msg = f"unknown nan_policy {nan_policy!r}: use one of {NAN_POLICIES}"
        raise StatisticsError(msg)
    base = as_values(baseline, "baseline")
    treat = as_values(treatment, "treatment")
    if paired and base.size != treat.size:
        msg = (
            f"paired samples must have equal lengths, got {base.size} baseline and "
            f"{treat.size} treatment values: pass paired=False, or align the replicates"
        )
        raise StatisticsError(msg)
    bad_base = _bad_positions(base)
    bad_treat = _bad_positions(treat)
    if nan_policy == "raise":
        if bad_base.size:
            _raise_non_finite("baseline", bad_base)
        if bad_treat.size:
            _raise_non_finite("treatment", bad_treat)
    elif bad_base.size or bad_treat.size:
        if paired:
            keep = np.isfinite(base) & np.isfinite(treat)
            base, treat = base[keep], treat[keep]
        else:
            base = base[np.isfinite(base)]
            treat = treat[np.isfinite(treat)]
    mean_b, var_b = _mean_var(base)
    mean_t, var_t = _mean_var(treat)
    differences: np.ndarray | None = None
    mean_d = var_d = float("nan")
    if paired:
        differences = treat - base
        mean_d, var_d = _mean_var(differences)
        differences, var_d = _snap_rounding_noise(differences, mean_d, var_d, max(abs(mean_b), abs(mean_t)))
    return Samples(
        baseline=base,
        treatment=treat,
        differences=differences,
        mean_baseline=mean_b,
        mean_treatment=mean_t,
        var_baseline=var_b,
        var_treatment=var_t,
        mean_diff=mean_d,
        var_diff=var_d,
    )
