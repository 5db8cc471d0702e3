"""Under pytest-xdist the summary, the saved run and the gate verdicts are those of a serial run."""

from __future__ import annotations

import json
import re

import pytest
from test_store_gate import EXPERIMENT

from pytest_crystallize.core.store.stores import DirectoryStore

SECOND = """
    import os
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    SHIFT = float(os.environ.get("CRYSTALLIZE_TEST_SHIFT", "0"))

    @pytest.mark.parametrize("level", [1, 2])
    @pytest.mark.experiment(replicates=10, seed=11, treatments=[Treatment("more", {"extra": 0.2})])
    @hypothesis(metric="loss", direction="minimize")
    def experiment_loss(ctx, level):
        rng = np.random.default_rng(ctx.seed)
        ctx.metrics.add("loss", rng.normal(level, 0.5) - ctx.get("extra", 0.0) + (SHIFT / 10) * rng.normal(1, 0.1))
"""


def _sections(text: str) -> str:
    """The crystallize summary and the comparison, without the run ids and timings that differ."""
    start = text.index("= crystallize =")
    end = text.index("crystallize: saved run")
    return re.sub(r"\d{8}-\d{6}-\d{6}-[0-9a-f]{8}", "<id>", text[start:end])


def test_xdist_gives_the_serial_summary_saved_run_and_gate_verdicts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gate=EXPERIMENT, test_second=SECOND)
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=3)
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-0.5")
    common = ("--crystallize", "--crystallize-gate", "--crystallize-compare=main", "-p", "no:randomly")
    serial = pytester.runpytest(*common, "--crystallize-save=serial", "--crystallize-json=serial.json")
    distributed = pytester.runpytest_subprocess(*common, "-n", "2", "--crystallize-save=xdist",
                                                "--crystallize-json=xdist.json")
    serial.assert_outcomes(passed=2, failed=1)
    distributed.assert_outcomes(passed=2, failed=1)
    assert serial.ret == distributed.ret == pytest.ExitCode.TESTS_FAILED
    assert "2 workers" in distributed.stdout.str() or "created: 2/2 workers" in distributed.stdout.str()
    assert _sections(distributed.stdout.str()) == _sections(serial.stdout.str())
    assert "1 failed the gate" in _sections(serial.stdout.str())
    reports = [json.loads((pytester.path / f"{n}.json").read_text())["experiments"] for n in ("serial", "xdist")]
    assert [(e["nodeid"], e["outcome"], e["comparison"]) for e in reports[0]] == [
        (e["nodeid"], e["outcome"], e["comparison"]) for e in reports[1]
    ]
    store = DirectoryStore(pytester.path / ".crystallize")
    runs = store.find("serial"), store.find("xdist")
    assert list(runs[0].experiments) == list(runs[1].experiments)
    assert len(runs[0].experiments) == 3
    for nodeid, entry in runs[0].experiments.items():
        other = runs[1].experiments[nodeid]
        assert (entry.fingerprint, entry.gate, entry.master_seed, entry.values) == (
            other.fingerprint, other.gate, other.master_seed, other.values)
        a, b = store.result(runs[0], nodeid), store.result(runs[1], nodeid)
        assert a.values.tolist() == b.values.tolist()
        assert [v.to_dict() for v in a.verdicts] == [v.to_dict() for v in b.verdicts]


def test_an_unsendable_user_property_never_turns_the_run_into_no_tests_ran(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        class Opaque:
            def __str__(self):
                return "opaque"

        def experiment_records(ctx, record_property):
            record_property("obj", Opaque())
            ctx.metrics.add("one", 1.0)
    """)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("--crystallize", "-n", "2", "--crystallize-replicates=2",
                                           f"--junitxml={xml}", "-W", "ignore::pytest.PytestWarning")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert 'name="obj" value="opaque"' in xml.read_text()
