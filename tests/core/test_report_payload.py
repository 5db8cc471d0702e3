"""The report payload: built once, read-only, and the same after a trip through JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from pytest_crystallize import CrystallizeError, Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report.payload import GateOutcome, ReportPayload
from pytest_crystallize.core.report.text import summarize, summary_lines


def _summary() -> dict[str, object]:
    def fn(ctx: Any) -> None:
        ctx.metrics.add("x", ctx.rng.normal() + ctx.get("d", 0.0))

    result = run_experiment(
        fn, name="payload", replicates=6, seed=3, treatments=[Treatment("t", {"d": 1.0})],
        hypotheses=[hypothesis("x", direction="maximize")],
    )
    return summarize(result)


def test_a_payload_survives_json_and_keeps_today_s_shape() -> None:
    summary = _summary()
    payload = ReportPayload(summary, gate=GateOutcome(failed=True, saved_run="abc123"))
    again = ReportPayload.from_json(payload.to_json())
    assert again == payload
    assert json.loads(payload.to_json()) == {**summary, "gate": {"failed": True, "saved_run": "abc123"}}
    assert list(payload.to_dict()) == [*summary, "gate"]


def test_without_a_gate_the_payload_is_the_summary_and_has_no_gate_key() -> None:
    summary = _summary()
    payload = ReportPayload(summary)
    assert payload.to_dict() == summary
    assert ReportPayload.from_json(payload.to_json()).gate is None
    assert summary_lines(payload.to_dict()) == summary_lines(summary)


def test_a_payload_is_read_only_all_the_way_down() -> None:
    summary = _summary()
    payload = ReportPayload(summary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        payload.gate = GateOutcome(failed=True)
    with pytest.raises(TypeError):
        payload.summary["passed"] = False
    assert isinstance(payload.summary["rows"], tuple)
    with pytest.raises(TypeError):
        payload.summary["rows"][0]["mean"] = 0.0
    summary["passed"] = not summary["passed"]  # the caller's dict is copied, not shared
    assert payload.summary["passed"] is not summary["passed"]


def test_clean_means_passed_and_not_failed_by_the_gate() -> None:
    summary = _summary()
    assert summary["passed"] is True
    assert ReportPayload(summary).clean
    assert ReportPayload(summary, gate=GateOutcome(failed=False, saved_run="r")).clean
    assert not ReportPayload(summary, gate=GateOutcome(failed=True)).clean
    assert not ReportPayload({**summary, "passed": False}).clean


def test_the_gate_outcome_is_a_field_not_a_summary_key() -> None:
    with pytest.raises(CrystallizeError, match="gate="):
        ReportPayload({**_summary(), "gate": {"failed": True}})
