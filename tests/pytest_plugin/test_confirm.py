"""--crystallize-confirm and --crystallize-require-confirmed under pytest, black-box."""

from __future__ import annotations

import json

import pytest

EXPERIMENT = """
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=20, seed=3, treatments=[Treatment("t", {{"shift": 1.0}})]{extra})
    @hypothesis(metric="x", direction="{direction}")
    def experiment_shift(ctx):
        ctx.metrics.add("x", ctx.rng.normal() + ctx.get("shift", 0.0))
"""


def _file(pytester: pytest.Pytester, direction: str = "maximize", extra: str = "") -> None:
    pytester.makepyfile(test_shift=EXPERIMENT.format(direction=direction, extra=extra))


def test_a_confirmatory_run_pre_registers_and_says_so(pytester: pytest.Pytester) -> None:
    _file(pytester)
    result = pytester.runpytest("--crystallize", "--crystallize-confirm", "--crystallize-require-confirmed")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*note: confirmation: attempt 1 is a clean confirmation (pre-registered: yes; fresh data: yes)",
        "*note: confirmation: no saved exploratory run of this experiment to confirm",
        "*PASS 'x maximize' t vs baseline: *, fixed design; confirmatory attempt 1: pre-registered, fresh data, "
        "paired_t: significant",
    ])
    (record,) = (pytester.path / ".crystallize" / "confirm").glob("*/attempt-1.json")
    data = json.loads(record.read_text())
    assert data["identity"] == "test_shift.py::experiment_shift"
    assert data["definition"]["hypotheses"][0]["direction"] == "maximize"


def test_the_marker_makes_one_experiment_confirmatory(pytester: pytest.Pytester) -> None:
    _file(pytester, extra=", confirm=True")
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*confirmatory attempt 1: pre-registered, fresh data*"])


def test_a_hypothesis_changed_after_exploring_is_stated_and_fails_the_requirement(pytester: pytest.Pytester) -> None:
    _file(pytester, direction="two-sided")
    pytester.runpytest("--crystallize", "--crystallize-save=explore").assert_outcomes(passed=1)
    _file(pytester, direction="maximize")
    result = pytester.runpytest("--crystallize", "--crystallize-confirm", "--crystallize-require-confirmed")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*note: confirmation: attempt 1 is NOT clean (pre-registered: yes; fresh data: yes)",
        "*note: confirmation: changed after the exploratory run *: hypothesis added: 'x maximize'*",
    ])
    result.stdout.fnmatch_lines(["*--crystallize-require-confirmed: experiment 'experiment_shift' is not confirmed: "
                                 "confirmatory attempt 1 is not clean: changed after the exploratory run*"])


def test_requiring_a_confirmation_fails_an_exploratory_run(pytester: pytest.Pytester) -> None:
    _file(pytester)
    pytester.makeini("[pytest]\ncrystallize_require_confirmed = true\n")
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*is not confirmed: it is not a confirmatory run (run it with --crystallize-confirm*"])
