"""CI surfaces: each verdict as JUnit XML properties, and the Markdown summary (--crystallize-markdown)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scipy import stats
from test_store_gate import EXPERIMENT as GATED
from test_store_gate import NODE as GATED_NODE

# Fixed values: the statistics are worked out by hand below, not by the code under test.
BASE = [10.0, 10.4, 9.8, 10.1, 9.9, 10.3, 10.2, 9.7]
GAIN = [0.5, 0.7, 0.2, 0.6, 0.4, 0.9, 0.3, 0.5]
EXPERIMENT = f"""
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    BASE, GAIN = {BASE}, {GAIN}

    @pytest.mark.experiment(replicates=8, seed=1,
                            treatments=[Treatment("tuned", {{"gain": 1.0}}), Treatment("worse", {{"gain": -0.1}})])
    @hypothesis(metric="score", direction="maximize", test="paired_t")
    def experiment_tuning(ctx):
        ctx.metrics.add("score", BASE[ctx.replicate] + ctx.get("gain", 0.0) * GAIN[ctx.replicate])
"""
NODE = "test_tuning.py::experiment_tuning"


def _properties(path: Path) -> dict[str, dict[str, str]]:
    return {
        case.get("name", ""): {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        for case in ET.parse(path).iter("testcase")
    }


def _by_hand(gain: float) -> dict[str, float]:
    """The paired t-test of treatment ``gain`` against the baseline, one-sided 'greater', and its 95% CI."""
    treatment = [b + gain * g for b, g in zip(BASE, GAIN, strict=True)]
    differences = [t - b for t, b in zip(treatment, BASE, strict=True)]
    n = len(differences)
    mean = sum(differences) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1) / n)
    half = stats.t.ppf(0.975, n - 1) * se
    p = stats.t.sf(mean / se, n - 1)
    return {"difference": mean, "ci_low": mean - half, "ci_high": mean + half, "p": p}


def test_each_verdict_is_a_set_of_readable_junit_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=EXPERIMENT)
    xml = pytester.path / "junit.xml"
    pytester.runpytest("--crystallize", f"--junitxml={xml}").assert_outcomes(failed=1)
    props = _properties(xml)["experiment_tuning"]
    assert "crystallize_payload" in props  # the JSON payload stays
    tuned, worse = _by_hand(1.0), _by_hand(-0.1)
    # Holm over the two comparisons: the smaller p doubled, the larger kept (never below the first).
    holm = (2 * tuned["p"], max(2 * tuned["p"], worse["p"]))
    for index, treatment, outcome, expected, adjusted in (
        (1, "tuned", "pass", tuned, holm[0]), (2, "worse", "fail", worse, holm[1]),
    ):
        prefix = f"crystallize.verdict.{index}."
        verdict = {k.removeprefix(prefix): v for k, v in props.items() if k.startswith(prefix)}
        assert {k: verdict[k] for k in ("hypothesis", "metric", "treatment", "outcome", "test", "confidence")} == {
            "hypothesis": "score maximize", "metric": "score", "treatment": treatment, "outcome": outcome,
            "test": "paired_t", "confidence": "0.95",
        }
        for field in ("difference", "ci_low", "ci_high", "p"):
            assert float(verdict[field]) == pytest.approx(expected[field], rel=1e-5), field
        assert float(verdict["p_adjusted"]) == pytest.approx(adjusted, rel=1e-5)


def test_the_markdown_summary_holds_the_summary_and_verdict_tables(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=EXPERIMENT)
    result = pytester.runpytest("--crystallize", "--crystallize-markdown=reports/summary.md")
    result.assert_outcomes(failed=1)
    text = (pytester.path / "reports" / "summary.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "## crystallize"
    assert "❌ **1 hypothesis passed, 1 failed in 1 experiment**" in lines
    assert r"### ❌ test\_tuning.py::experiment\_tuning (8 replicates, seed 1): FAILED" in lines
    assert "| condition | metric | n | mean | std | 95% CI | diff | p | verdict |" in lines
    # The baseline's mean by hand: 80.4 / 8.
    assert any(line.startswith(f"| baseline | score | 8 | {sum(BASE) / 8:.4g} |") for line in lines)
    header = "| hypothesis | treatment | outcome | diff | 95% CI | p | p adjusted | test | reason |"
    rows = lines[lines.index(header) + 2:lines.index(header) + 4]
    assert [row.split(" | ")[1:3] for row in rows] == [["tuned", "PASS"], ["worse", "FAIL"]]
    assert f"+{_by_hand(1.0)['difference']:.4g}" in rows[0]


def test_the_markdown_summary_holds_the_gate_table_and_the_run_compared_with(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gate=GATED)
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-0.5")
    pytester.makeini("[pytest]\ncrystallize_markdown = gate.md\n")
    pytester.runpytest("--crystallize", "--crystallize-gate").assert_outcomes(failed=1)
    lines = (pytester.path / "gate.md").read_text(encoding="utf-8").splitlines()
    compared = next(line for line in lines if line.startswith("## crystallize: compared with"))
    assert "(main)" in compared
    assert "saved 20" in compared
    assert any(line.startswith("❌ **") and "regressed" in line and "failed the gate" in line for line in lines)
    node = GATED_NODE.replace("_", r"\_")
    assert any(line.startswith(f"### ❌ {node}: vs saved run") and "gate FAILED" in line for line in lines)
    assert any(line.startswith("| baseline | score | higher | 12/12 |") and "REGRESSED" in line for line in lines)


def test_a_bare_markdown_option_appends_to_the_github_step_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_tuning=EXPERIMENT)
    summary = pytester.path / "step_summary.md"
    summary.write_text("# Earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.runpytest("--crystallize", "--crystallize-markdown").assert_outcomes(failed=1)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# Earlier step\n")  # what the job's other steps wrote is kept
    assert "\n## crystallize\n" in text
    assert "| tuned | score | 8 |" in text


def test_a_bare_markdown_option_outside_github_actions_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = pytester.runpytest("--crystallize-markdown")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*--crystallize-markdown without a PATH appends to $GITHUB_STEP_SUMMARY, which is not set here*"
        "--crystallize-markdown=PATH*",
    ])


@pytest.mark.parametrize("swallowed", ["test_tuning.py", "tests", "test_tuning.py::experiment_tuning"])
def test_a_test_path_taken_as_the_markdown_path_is_a_usage_error(pytester: pytest.Pytester, swallowed: str) -> None:
    pytester.makepyfile(test_tuning=EXPERIMENT)
    (pytester.path / "tests").mkdir()
    before = (pytester.path / "test_tuning.py").read_text()
    result = pytester.runpytest("--crystallize", "--crystallize-markdown", swallowed)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--crystallize-markdown: {swallowed!r} looks like a test path*--crystallize-markdown=PATH*"])
    assert (pytester.path / "test_tuning.py").read_text() == before  # never written over


def test_a_markdown_summary_that_cannot_be_written_fails_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=EXPERIMENT.replace('Treatment("worse", {"gain": -0.1})', ""))
    (pytester.path / "taken").write_text("a file where the summary's directory would be")
    result = pytester.runpytest("--crystallize", "--crystallize-markdown=taken/summary.md")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["crystallize: ERROR: could not write the Markdown summary *taken*"])


def test_markdown_and_junit_properties_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_tuning=EXPERIMENT, test_other=EXPERIMENT.replace("experiment_tuning", "experiment_other"))
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-n", "2", "--crystallize", f"--junitxml={xml}", "--crystallize-markdown=summary.md",
    )
    result.assert_outcomes(failed=2)
    text = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert "❌ **2 hypotheses passed, 2 failed in 2 experiments**" in text
    for name in ("test\\_tuning.py::experiment\\_tuning", "test\\_other.py::experiment\\_other"):
        assert f"### ❌ {name} (8 replicates, seed 1): FAILED" in text
    props = _properties(xml)
    for case in ("experiment_tuning", "experiment_other"):
        assert props[case]["crystallize.verdict.2.outcome"] == "fail"
        assert float(props[case]["crystallize.verdict.1.difference"]) == pytest.approx(_by_hand(1.0)["difference"])
