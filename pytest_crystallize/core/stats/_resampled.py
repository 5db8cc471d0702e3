"""The corrected resampled t: comparing two learners over overlapping training sets.

When each replicate trains on one resample of a single data set and tests
on the rest (repeated random splits, or the folds of repeated k-fold
cross-validation), the replicates are not independent: their training sets
overlap, so their paired differences are positively correlated, and the
paired t-test's variance ``s^2 / J`` is far too small. Its false-positive
rate then grows with the number of resamples.

Nadeau and Bengio (2003, "Inference for the generalization error", Machine
Learning 52:239-281) replace ``1 / J`` by ``1 / J + n_test / n_train``:

    t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d)),  df = J - 1

where ``d`` are the ``J`` per-resample differences. Bouckaert and Frank
(2004, "Evaluating the replicability of significance tests for comparing
learning algorithms", PAKDD) apply the same correction to ``r`` repeats of
``k``-fold cross-validation, with ``J = k r``, ``n_test / n_train = 1 / (k -
1)`` and ``df = k r - 1``, and show it is the most replicable of the tests
they compared. The interval and the power below use the same variance,
so all three agree; the effect size is Cohen's ``d_z = mean(d) / sd(d)``
(``t = d_z / sqrt(1 / J + n_test / n_train)``).
"""

from __future__ import annotations

import math

from pytest_crystallize.errors import StatisticsError

from ._comparison import Comparison
from ._effects import cohens_dz
from ._estimate import Estimate, Labels, from_estimate
from ._inputs import prepare

__all__ = ["compare_resampled", "corrected_variance_factor"]


def corrected_variance_factor(resamples: int, test_train_ratio: float) -> float:
    """Nadeau and Bengio's ``1 / J + n_test / n_train``: what multiplies ``var(d)`` in place of ``1 / J``."""
    return 1.0 / resamples + test_train_ratio


def compare_resampled(
    baseline: object,
    treatment: object,
    *,
    test_train_ratio: float,
    test: str = "corrected_resampled_t",
    reason: str = "",
    direction: str = "two-sided",
    alpha: float = 0.05,
    margin: float | None = None,
    relative_margin: bool = False,
    better: str = "higher",
    mde: float | None = None,
    nan_policy: str = "raise",
    confidence: float = 0.95,
) -> Comparison:
    """The corrected resampled t of paired per-resample values (see the module docstring).

    ``test_train_ratio`` is ``n_test / n_train`` of one resample (``1 / (k -
    1)`` for k-fold cross-validation); ``test`` names the procedure in the
    verdict and ``reason`` says why it ran.

    Raises:
        StatisticsError: unpaired or unusable values, fewer than two
            resamples, or a ratio that is not a positive number.

    """
    if not (isinstance(test_train_ratio, (int, float)) and 0.0 < test_train_ratio < math.inf):
        msg = f"test_train_ratio must be a positive number (n_test / n_train), got {test_train_ratio!r}"
        raise StatisticsError(msg)
    samples = prepare(baseline, treatment, paired=True, nan_policy=nan_policy)
    resamples = samples.n_baseline
    if resamples < 2:
        msg = f"{test} needs at least 2 resamples (folds x repeats), got {resamples}: run more replicates"
        raise StatisticsError(msg)
    variance = samples.var_diff

    def at_size(n: int) -> tuple[float, float]:
        return math.sqrt(corrected_variance_factor(n, test_train_ratio) * variance), n - 1.0

    se, df = at_size(resamples)
    labels = Labels(
        test=test,
        reason=reason or (
            f"resamples share training data: corrected resampled t, variance x (1/{resamples} + "
            f"{test_train_ratio:.4g}) instead of 1/{resamples} (Nadeau & Bengio 2003)"
        ),
        effect_size=cohens_dz(samples),
        effect_size_name="cohens_dz",
    )
    return from_estimate(
        samples, Estimate(samples.mean_diff, se, df, at_size), labels, direction=direction, better=better,
        alpha=alpha, margin=margin, relative_margin=relative_margin, mde=mde, confidence=confidence,
    )
