"""Standardised effect sizes: Hedges' g, Cohen's d_z, risk difference."""

from __future__ import annotations

import math

from ._inputs import Samples

__all__ = ["cohens_dz", "effect_size", "hedges_correction", "hedges_g"]


def hedges_correction(df: int) -> float:
    """Exact small-sample bias correction J(df) = G(df/2) / (sqrt(df/2) G((df-1)/2)).

    Hedges (1981); the familiar ``1 - 3 / (4 df - 1)`` is its approximation.
    """
    if df < 2:
        return float("nan")
    return math.exp(math.lgamma(df / 2.0) - math.lgamma((df - 1) / 2.0)) / math.sqrt(df / 2.0)


def hedges_g(samples: Samples) -> float:
    """Hedges' g: mean difference over the pooled SD, bias-corrected.

    nan when the pooled SD is zero or there are fewer than two degrees of
    freedom.
    """
    nb, nt = samples.n_baseline, samples.n_treatment
    df = nb + nt - 2
    if df < 2:
        return float("nan")
    ss = (nb - 1) * _zero_if_nan(samples.var_baseline) + (nt - 1) * _zero_if_nan(samples.var_treatment)
    sd = math.sqrt(ss / df)
    if sd == 0.0:
        return float("nan")
    return hedges_correction(df) * (samples.mean_treatment - samples.mean_baseline) / sd


def cohens_dz(samples: Samples) -> float:
    """Cohen's d_z: mean paired difference over the SD of the differences."""
    if not samples.var_diff > 0.0:
        return float("nan")
    return samples.mean_diff / math.sqrt(samples.var_diff)


def effect_size(samples: Samples, *, binary: bool) -> tuple[float, str]:
    """Return the effect size matching a test: risk difference, d_z if paired, else g."""
    if binary:
        return samples.mean_treatment - samples.mean_baseline, "risk_difference"
    if samples.paired:
        return cohens_dz(samples), "cohens_dz"
    return hedges_g(samples), "hedges_g"


def _zero_if_nan(value: float) -> float:
    # A single value has no spread to pool (its variance is nan, its weight 0).
    return 0.0 if math.isnan(value) else value
