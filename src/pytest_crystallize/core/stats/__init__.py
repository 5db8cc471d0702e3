"""Statistics for experiments: compare a treatment with its baseline.

``compare(baseline, treatment, ...)`` runs one test and returns a
:class:`Comparison`; ``describe(values)`` summarises one sample.

Choosing a test (``test="auto"``):

1. every value on both sides is 0 or 1 -> paired: exact McNemar test;
   unpaired: Fisher's exact test;
2. otherwise, paired replicates -> paired t-test;
3. otherwise -> Welch's t-test.

Directions: ``maximize`` (treatment larger), ``minimize`` (smaller),
``two-sided``. The alternative is always treatment versus baseline in scipy's
convention (``"greater"`` means treatment > baseline).

Degenerate data never give nan: two identical constant samples give p = 1;
samples without any spread (constant samples, or a constant paired
difference) get the exact permutation p-value, and ``degenerate`` says why.
"""

from __future__ import annotations

from ._compare import compare
from ._comparison import Comparison
from ._corrections import CORRECTIONS, adjust_pvalues
from ._describe import Summary, describe
from ._inputs import DIRECTIONS
from ._registry import TESTS

__all__ = [
    "CORRECTIONS",
    "DIRECTIONS",
    "TESTS",
    "Comparison",
    "Summary",
    "adjust_pvalues",
    "compare",
    "describe",
]
