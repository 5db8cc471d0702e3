"""CI surfaces: statistics as JUnit XML properties, and --crystallize-json for dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from test_store_gate import EXPERIMENT, NODE


def _properties(path: str) -> dict[str, dict[str, str]]:
    tree = ET.parse(path)
    return {
        case.get("name", ""): {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }


def test_junit_xml_carries_statistics_and_the_gate_as_json_properties(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gate=EXPERIMENT)
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-0.5")
    xml = str(pytester.path / "junit.xml")
    result = pytester.runpytest("--crystallize", "--crystallize-gate", f"--junitxml={xml}")
    result.assert_outcomes(failed=1)
    props = _properties(xml)["experiment_score"]
    summary = json.loads(props["crystallize_payload"])
    (verdict,) = summary["verdicts"]
    assert (verdict["hypothesis"], verdict["holds"], verdict["test"]) == ("score maximize", True, "paired_t")
    assert 0 < verdict["p_value"] < 0.05
    assert {(r["condition"], r["metric"]) for r in summary["rows"]} >= {("baseline", "score"), ("hot", "latency")}
    gate = json.loads(props["crystallize_gate"])
    assert gate["failed"] is True
    assert [(r["condition"], r["metric"], r["status"]) for r in gate["rows"]] == [
        ("baseline", "score", "regressed"), ("hot", "score", "regressed"),
        ("baseline", "latency", "regressed"), ("hot", "latency", "regressed"),
    ]
    assert gate["rows"][0]["p_worse_adjusted"] < 0.05


def test_the_json_report_holds_every_experiment_its_outcome_and_comparison(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gate=EXPERIMENT)
    first = pytester.runpytest("--crystallize", "--crystallize-save=main", "--crystallize-json=out/first.json")
    first.assert_outcomes(passed=1)
    document = json.loads((pytester.path / "out" / "first.json").read_text())
    assert document["format"] == "pytest-crystallize/report"
    assert document["compared_with"] is None
    assert document["saved_run"] is not None
    (experiment,) = document["experiments"]
    assert (experiment["nodeid"], experiment["outcome"], experiment["comparison"]) == (NODE, "passed", None)
    assert experiment["summary"]["replicates"] == 12
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "0.5")
    pytester.makeini("[pytest]\ncrystallize_json = reports/second.json\n")
    pytester.runpytest("--crystallize", "--crystallize-compare").assert_outcomes(passed=1)
    second = json.loads((pytester.path / "reports" / "second.json").read_text())
    assert second["compared_with"] == document["saved_run"]
    assert second["saved_run"] is None
    assert second["gate"] is False
    comparison = second["experiments"][0]["comparison"]
    assert {r["status"] for r in comparison["rows"]} == {"improved"}
    assert comparison["enforced"] is False
