"""Sequential designs under pytest: futility stops, anytime-valid monitoring, the time budget."""

from __future__ import annotations

import pytest

FUTILE = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates="auto", max_replicates=80, looks=4, futility=True,
                            treatments=[Treatment("t", {"shift": -1.0})])
    @hypothesis(metric="x", direction="maximize", test="welch_t")
    def experiment_hopeless(ctx):
        rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
        ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))
"""


def test_a_futile_hypothesis_fails_early_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FUTILE)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment_hopeless (20 replicates, seed *): FAILED",
        "*FAIL 'x maximize' t vs baseline: *, group-sequential design (O'Brien-Fleming spending, non-binding "
        "futility), welch_t: stopped for futility at look 1 of 4",
        "*sequential: stopped at look 1 of 4 after 20 of 80 replicates per condition; saved 120 replicate runs",
    ])
    result.stdout.fnmatch_lines(["*hypothesis 'x maximize' for treatment 't': stopped for futility at look 1 of 4:*"])
