"""The relative difference, and when it means something.

``difference / |mean baseline|`` is printed as a percentage, so it must only
exist when the baseline mean is clearly away from zero: a baseline mean of
1e-12 once printed "+50499781640406.3%". It is nan (and the reports show no
percentage) when

* the baseline mean is 0, or not finite;
* it is rounding residue: below ``sqrt(eps)`` (~1.5e-8) times the largest
  magnitude in either condition (values of +-1 that cancel to 1e-12);
* its sign is not established: 0 lies inside the baseline mean's
  t-interval at the comparison's confidence.

0/1 outcomes are proportions, never negative: any success in the baseline
puts its Wilson interval above 0, so the relative difference (the relative
risk minus 1) is kept whenever the baseline rate is not 0.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from ._binary import is_binary
from ._describe import t_quantile
from ._inputs import Samples

__all__ = ["relative_difference"]

#: A mean below this fraction of the data's magnitude is cancellation residue.
_RESIDUE: Final = math.sqrt(float(np.finfo(np.float64).eps))


def relative_difference(samples: Samples, difference: float, confidence: float) -> float:
    """``difference / |mean baseline|``, or nan when the baseline mean is not clearly away from 0."""
    base = samples.mean_baseline
    if not math.isfinite(base) or base == 0.0:
        return math.nan
    if is_binary(samples.baseline) and is_binary(samples.treatment):
        return difference / abs(base)
    scale = max(float(np.max(np.abs(samples.baseline))), float(np.max(np.abs(samples.treatment), initial=0.0)))
    if abs(base) <= _RESIDUE * scale:
        return math.nan
    n = samples.n_baseline
    if n >= 2 and samples.var_baseline > 0.0:
        half = t_quantile(confidence, n - 1) * math.sqrt(samples.var_baseline / n)
        if abs(base) <= half:
            return math.nan
    return difference / abs(base)
