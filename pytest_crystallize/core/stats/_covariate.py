"""Covariate adjustment: regression adjustment of the difference (CUPED; Lin 2013).

A covariate is a number each replicate records *before* the treatment can
act on it (the difficulty of the replicate's data, a pre-period metric).
Its distribution is the same in every condition, so adjusting for it
removes the part of the outcome it explains without biasing the
difference, and the interval shrinks by the share of variance it explains.

Independent samples (Lin 2013, "Agnostic notes on regression adjustments
to experimental data", Annals of Applied Statistics 7:295-318): regress the
outcome on the treatment indicator, the covariate centred at its pooled
mean, and their interaction,

    y = a + tau T + b (x - mean x) + g T (x - mean x) + e;

``tau`` is the adjusted difference. With the interaction the adjustment
never hurts precision asymptotically, even when the regression is wrong.

Paired replicates: regress the differences ``d = y_T - y_B`` on the
covariate difference ``dx = x_T - x_B``, ``d = tau + b dx + e``. The
covariate difference has mean 0 by design (pre-treatment), so it is *not*
centred at its sample mean: the intercept is then CUPED's ``mean(d) - b
mean(dx)``; centring would give back ``mean(d)`` and no adjustment. When
the covariate is the same in both conditions of every replicate, pairing
has already removed what it explains: the estimate is the plain mean
difference and the variance reduction is 0.

Standard errors are heteroskedasticity-consistent (HC2, ``e_i^2 / (1 -
h_ii)``), as Lin recommends, with a t reference on the residual degrees of
freedom. Without the covariate the same HC2 standard error is exactly the
paired t's (``s_d^2 / n``) or Welch's (``s_B^2 / n_B + s_T^2 / n_T``), so
``variance_reduction = 1 - se_adjusted^2 / se_unadjusted^2`` compares like
with like (it is negative when the covariate explains nothing and costs
degrees of freedom).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pytest_crystallize.errors import StatisticsError

from ._comparison import Comparison
from ._estimate import Estimate, Labels, from_estimate
from ._inputs import Samples, as_values, prepare

__all__ = ["Adjusted", "compare_adjusted", "hc2_ols"]


@dataclass(frozen=True, slots=True)
class Adjusted:
    """A covariate-adjusted comparison and how much variance the adjustment removed."""

    comparison: Comparison
    #: ``1 - var(adjusted) / var(unadjusted)`` of the difference's estimate.
    variance_reduction: float
    #: The covariate's slope (paired: on the covariate difference; unpaired: in the baseline).
    slope: float
    #: Why no adjustment could be made, or ``""``.
    note: str = ""


def hc2_ols(design: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients and their HC2 covariance matrix.

    HC2 weighs each squared residual by ``1 / (1 - h_ii)``, the leverage
    correction (MacKinnon and White 1985). Raises StatisticsError when the
    design is rank-deficient.
    """
    p = design.shape[1]
    gram = design.T @ design
    if np.linalg.matrix_rank(design) < p:
        msg = "the covariate regression has collinear columns (a covariate without spread?)"
        raise StatisticsError(msg)
    bread = np.linalg.inv(gram)
    coefficients = bread @ (design.T @ outcome)
    residuals = outcome - design @ coefficients
    leverage = np.einsum("ij,jk,ik->i", design, bread, design)
    weights = residuals**2 / np.clip(1.0 - leverage, 1e-12, None)
    meat = (design * weights[:, None]).T @ design
    return coefficients, bread @ meat @ bread


def _covariates(values: object, n: int, side: str) -> np.ndarray:
    array = as_values(values, f"{side} covariate")
    if array.size != n:
        msg = f"{side} covariate has {array.size} values but the metric has {n}: record it in every replicate"
        raise StatisticsError(msg, side=side)
    if not np.all(np.isfinite(array)):
        msg = f"{side} covariate has non-finite values: a covariate must be recorded as a finite number"
        raise StatisticsError(msg, side=side)
    return array


def _paired(samples: Samples, x_b: np.ndarray, x_t: np.ndarray) -> tuple[Estimate, float, float, str]:
    """(estimate, unadjusted variance, slope, note) for paired replicates."""
    d = samples.differences
    if d is None:  # only called for paired samples
        msg = "paired covariate adjustment needs paired samples"
        raise StatisticsError(msg)
    n = d.size
    plain = samples.var_diff / n
    dx = x_t - x_b
    if n < 4 or not np.ptp(dx) > 0.0:
        note = (
            "the covariate is the same in both conditions of every replicate: pairing already removes "
            "what it explains, so the difference is not adjusted"
            if not np.any(dx) else "the covariate difference has no spread (or too few replicates): not adjusted"
        )
        return Estimate(samples.mean_diff, math.sqrt(plain), n - 1.0, _scaled(plain, n, 1, 1)), plain, 0.0, note
    coefficients, covariance = hc2_ols(np.column_stack([np.ones(n), dx]), d)
    variance = float(covariance[0, 0])
    estimate = Estimate(float(coefficients[0]), math.sqrt(variance), n - 2.0, _scaled(variance, n, 1, 2))
    return estimate, plain, float(coefficients[1]), ""


def _unpaired(samples: Samples, x_b: np.ndarray, x_t: np.ndarray) -> tuple[Estimate, float, float, str]:
    """(estimate, unadjusted variance, slope, note) for independent samples (Lin's interacted regression)."""
    nb, nt = samples.n_baseline, samples.n_treatment
    plain = samples.var_baseline / nb + samples.var_treatment / nt
    y = np.concatenate([samples.baseline, samples.treatment])
    x = np.concatenate([x_b, x_t])
    treated = np.concatenate([np.zeros(nb), np.ones(nt)])
    centred = x - x.mean()
    design = np.column_stack([np.ones(nb + nt), treated, centred, treated * centred])
    if min(nb, nt) < 3 or not (np.ptp(x_b) > 0.0 and np.ptp(x_t) > 0.0):
        note = "the covariate has no spread within a condition (or too few replicates): not adjusted"
        return Estimate(samples.mean_treatment - samples.mean_baseline, math.sqrt(plain), nb + nt - 2.0,
                        _scaled(plain, nb + nt, 2, 2)), plain, 0.0, note
    coefficients, covariance = hc2_ols(design, y)
    variance = float(covariance[1, 1])
    total = nb + nt
    estimate = Estimate(float(coefficients[1]), math.sqrt(variance), total - 4.0, _scaled(variance, total, 2, 4))
    return estimate, plain, float(coefficients[2]), ""


def _scaled(variance: float, values: int, per_replicate: int, parameters: int) -> Callable[[int], tuple[float, float]]:
    """``at_size``: the same spread with ``m`` replicates per condition, ``values`` values now.

    ``per_replicate`` is how many values one replicate adds to the regression
    (1 paired difference, or 2 independent outcomes).
    """

    def at_size(m: int) -> tuple[float, float]:
        return math.sqrt(variance * values / (per_replicate * m)), max(per_replicate * m - parameters, 1.0)

    return at_size


def compare_adjusted(
    baseline: object,
    treatment: object,
    covariate_baseline: object,
    covariate_treatment: object,
    *,
    paired: bool,
    direction: str = "two-sided",
    alpha: float = 0.05,
    margin: float | None = None,
    relative_margin: bool = False,
    better: str = "higher",
    mde: float | None = None,
    covariate: str = "covariate",
    confidence: float = 0.95,
) -> Adjusted:
    """The covariate-adjusted comparison of treatment with baseline (see the module docstring).

    ``covariate_*`` hold each replicate's covariate, aligned with the
    metric's values. Non-finite values are errors: adjust only on what was
    measured.
    """
    samples = prepare(baseline, treatment, paired=paired, nan_policy="raise")
    x_b = _covariates(covariate_baseline, samples.n_baseline, "baseline")
    x_t = _covariates(covariate_treatment, samples.n_treatment, "treatment")
    if min(samples.n_baseline, samples.n_treatment) < 2:
        msg = "covariate adjustment needs at least 2 replicates per condition: run more replicates"
        raise StatisticsError(msg)
    estimate, plain, slope, note = (_paired if paired else _unpaired)(samples, x_b, x_t)
    reduction = 1.0 - estimate.se**2 / plain if plain > 0.0 else 0.0
    kind = "differences on the covariate difference" if paired else "outcome on treatment x centred covariate"
    reason = (
        f"adjusted for covariate {covariate!r} by regression ({kind}; Lin 2013), HC2 robust standard error, "
        f"variance reduced by {reduction:.0%}"
    )
    if note:
        reason = f"covariate {covariate!r}: {note}"
    spread = math.sqrt(samples.var_diff if paired else (samples.var_baseline + samples.var_treatment) / 2.0)
    labels = Labels(
        test="covariate_adjusted_t", reason=reason,
        effect_size=estimate.value / spread if spread > 0.0 else math.nan,
        effect_size_name="adjusted_dz" if paired else "adjusted_d",
    )
    comparison = from_estimate(
        samples, estimate, labels, direction=direction, better=better, alpha=alpha, margin=margin,
        relative_margin=relative_margin, mde=mde, confidence=confidence,
    )
    return Adjusted(comparison, 0.0 if note else reduction, slope, note)
