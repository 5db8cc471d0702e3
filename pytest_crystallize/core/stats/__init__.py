"""Statistics for experiments: compare a treatment with its baseline.

``compare(baseline, treatment, ...)`` runs one test and returns a
:class:`Comparison`; ``describe(values)`` summarises one sample;
``adjust_pvalues`` corrects a family of p-values; ``power`` and
``replicates_needed`` plan t-test experiments; :class:`SequentialPlan` lets
an experiment stop early at planned looks (for success or futility);
``anytime_test`` checks a hypothesis after every replicate with an
e-process that stays valid whenever the run stops.

Choosing a test (``test="auto"``):

1. every value on both sides is 0 or 1 ("binary"):
   paired -> exact McNemar test, unpaired -> Fisher's exact test; against a
   margin (no_worse, equivalent, or a superiority margin) the score tests of
   the risk difference: Tango's (paired) or Farrington-Manning's (unpaired);
2. otherwise paired replicates -> paired t-test, independent samples ->
   Welch's t-test, each screened for skewness first, since skewed values
   (latencies, costs) make a t-test claim too much at small n (lognormal
   values against near-constant ones: 21-33% false positives at alpha 0.05):

   * the screen: the L-skewness of the paired differences (of each
     condition, unpaired), tested one-sided against normal samples of the
     same size, in the direction that makes the tested tail too liberal;
     level 0.10 below 28 replicates (where Sugden's rule tolerates no
     skewness at all), 0.01 from 28 on;
   * nothing found -> the t-test as is;
   * skewness found and ``n > 28 + 25 G1^2`` (Sugden, Smith & Jones 2000,
     after Cochran 1977) -> ``skew_corrected_t`` (Hall 1992);
   * skewness found, fewer replicates -> no claim: p = 1, and ``degenerate``
     says why and about how many replicates the rule asks for.

   Details and references in ``_skewness``. Fewer than 5 values are not
   screened. A test named explicitly (``test="paired_t"``) is never screened.

Built-in tests: ``welch_t``, ``student_t``, ``paired_t``, ``skew_corrected_t``
(Hall's transformation of the paired or Welch t), ``mann_whitney``,
``wilcoxon``, ``permutation``, ``bootstrap`` (continuous values; margins by a
location shift of the treatment values) and ``fisher_exact``, ``boschloo``,
``chi_square``, ``mcnemar`` (0/1 values; no margins), ``farrington_manning``,
``tango`` (0/1 values, margins). ``paired_t``, ``wilcoxon``, ``mcnemar`` and
``tango`` need ``paired=True``; ``permutation`` and ``bootstrap`` pair when
they can; the others ignore pairing. A user's own test is a callable
``fn(baseline, treatment, alternative) -> p | {"pvalue": p} | obj.pvalue``.

Directions (treatment versus baseline, scipy's ``alternative`` convention):
``maximize`` -> "greater", ``minimize`` -> "less", ``two-sided``;
``no_worse`` (non-inferiority: the difference is not worse than ``-margin``,
or ``+margin`` with ``better="lower"``); ``equivalent`` (two one-sided tests
at ``+-margin``; the p-value is the larger one). ``margin`` with maximize /
minimize asks for superiority by at least that margin.

Intervals: t family -> its own t-interval (paired, Welch or pooled); rank
and permutation tests and users' tests -> the paired or Welch t-interval of
the mean difference; bootstrap -> percentile interval; 0/1 tests -> Newcombe's
risk-difference intervals (hybrid score unpaired, square-and-add paired).

Beyond two samples: ``compare_resampled`` (the corrected resampled t of
Nadeau & Bengio, and Bouckaert & Frank's corrected repeated k-fold t, for
replicates that share training data), ``compare_adjusted`` (regression
adjustment for a pre-treatment covariate, Lin 2013, HC2 standard errors)
and ``compare_best`` (multiple comparisons with the best, Hsu 1996).

Degenerate data never give nan: two identical constant samples give p = 1;
samples without any spread (constant samples, or a constant paired
difference) get the exact permutation p-value; ``degenerate`` says why, and
``no_variation`` holds what had no spread as data.
"""

from __future__ import annotations

from pytest_crystallize.core.vocabulary import CORRECTIONS, DIRECTIONS, FUTILITY, SPENDING

from ._anytime import (
    ANYTIME_METHODS,
    AnytimeMethod,
    AnytimeOutcome,
    anytime_test,
    betting_capital,
    t_mixture_bayes_factor,
)
from ._best import BestComparison, compare_best
from ._binary import binary_outcome
from ._comparison import Comparison, NoVariation
from ._corrections import adjust_pvalues
from ._covariate import Adjusted, compare_adjusted
from ._describe import Summary, describe
from ._power import power, replicates_needed
from ._registry import TESTS
from ._resampled import compare_resampled, corrected_variance_factor
from ._sequential import SequentialPlan
from ._two_sample import compare

#: Procedures a hypothesis may name that :func:`compare` does not run: each needs
#: more than two samples (a resampling design, a covariate, every condition) or
#: an anytime design (its e-processes, tested after every replicate).
PROCEDURES: tuple[str, ...] = (
    "corrected_repeated_kfold_t", "corrected_resampled_t", "covariate_adjusted_t", "mcb", *ANYTIME_METHODS,
)

__all__ = [
    "ANYTIME_METHODS",
    "CORRECTIONS",
    "DIRECTIONS",
    "FUTILITY",
    "PROCEDURES",
    "SPENDING",
    "TESTS",
    "Adjusted",
    "AnytimeMethod",
    "AnytimeOutcome",
    "BestComparison",
    "Comparison",
    "NoVariation",
    "SequentialPlan",
    "Summary",
    "adjust_pvalues",
    "anytime_test",
    "betting_capital",
    "binary_outcome",
    "compare",
    "compare_adjusted",
    "compare_best",
    "compare_resampled",
    "corrected_variance_factor",
    "describe",
    "power",
    "replicates_needed",
    "t_mixture_bayes_factor",
]
