"""A badly defined experiment is an error of its own item; every other test still runs."""

from __future__ import annotations

import pytest


def test_bad_marker_values_fail_only_their_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.experiment(params="x")
        def experiment_params_not_a_mapping(ctx):
            ctx.metrics.add("x", 1.0)

        @pytest.mark.experiment(treatments="hot")
        def experiment_treatments_a_string(ctx):
            ctx.metrics.add("x", 1.0)

        @pytest.mark.experiment(replicates=10**15)
        def experiment_too_many(ctx):
            ctx.metrics.add("x", 1.0)

        @pytest.mark.experiment(treatments=None, replicates=3)
        def experiment_treatments_none(ctx):
            ctx.metrics.add("x", 1.0)

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--crystallize", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines_random([
        "*experiment_params_not_a_mapping*params must be a mapping*",
        "*experiment_treatments_a_string*treatments must be a list*",
        "*experiment_too_many*replicates=1,000,000,000,000,000 is more than any machine*",
    ])
    assert "Interrupted" not in result.stdout.str()
