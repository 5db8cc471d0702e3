"""Which metrics are gated, margins, definitions and their fingerprints, and what is not compared."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from test_gate_statistics import SAVED_A, result_of

from pytest_crystallize import ConfigurationError, Experiment, ResultsError, Treatment, hypothesis
from pytest_crystallize.core.definition import definition_changes, definition_of, fingerprint
from pytest_crystallize.core.gate import (
    CHANGED,
    COMPARED,
    NEW,
    UNREADABLE,
    GateSpec,
    gate_experiment,
    gate_failure,
    gate_lines,
    gate_specs,
    parse_margin,
)
from pytest_crystallize.core.runs import ExperimentRun, NewRun
from pytest_crystallize.core.store import MemoryStore


def _function(ctx: object) -> None:
    pass


def define(**options: object) -> Experiment:
    options.setdefault("treatments", [Treatment("t", {"x": 1})])
    return Experiment.define(_function, name="e", **options)


def test_directions_come_from_hypotheses_and_the_marker_overrides_them() -> None:
    hypotheses = [
        hypothesis("acc", "maximize"), hypothesis("loss", "minimize"),
        hypothesis("cost", "no_worse", margin=1, better="lower"), hypothesis("drift", "two-sided"),
        hypothesis("mixed", "maximize"), hypothesis("mixed", "minimize"),
    ]
    specs = gate_specs(hypotheses, None, "here")
    assert [(s.metric, s.better) for s in specs] == [("acc", "higher"), ("loss", "lower"), ("cost", "lower")]
    assert specs[0].source == "hypothesis 'acc maximize'"
    assert specs[0].margin is None
    marker = {"acc": None, "mixed": "maximize", "latency": {"direction": "minimize", "margin": "5%", "test": "welch_t"}}
    specs = gate_specs(hypotheses, marker, "here")
    assert [s.metric for s in specs] == ["loss", "cost", "mixed", "latency"]
    assert specs[-1] == GateSpec("latency", "lower", 0.05, True, "welch_t", source="gate=")


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        (["acc"], "gate= must map metric names"),
        ({"acc": "up"}, "needs direction 'maximize' or 'minimize'"),
        ({"acc": {"direction": "maximize", "limit": 1}}, "dict with keys better, direction, margin, test"),
        ({"acc": {"direction": "maximize", "margin": -1}}, "the margin must be a number >= 0"),
        ({"acc": {"direction": "maximize", "test": "magic"}}, "unknown test 'magic'"),
    ],
)
def test_bad_gate_mappings_name_the_experiment_and_metric(gate: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        gate_specs((), gate, "experiment 'e'")
    assert str(info.value).startswith("experiment 'e'")


def test_margins_are_numbers_or_percentages() -> None:
    assert parse_margin("0.02", "x") == (0.02, False)
    assert parse_margin(" 2% ", "x") == (0.02, True)
    assert parse_margin(0, "x") == (0.0, False)
    for bad in ("", "abc", "-1", "nan", True, "inf%"):
        with pytest.raises(ConfigurationError, match="margin must be"):
            parse_margin(bad, "x")


class Opaque:
    pass


FINGERPRINT_IN_A_SUBPROCESS = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from test_gate_specs import define, Opaque
    from pytest_crystallize import Treatment, hypothesis
    from pytest_crystallize.core.definition import definition_of, fingerprint
    e = define(treatments=[Treatment("t", {"obj": Opaque()})], hypotheses=[hypothesis("acc", "maximize", mde=1)])
    print(fingerprint(definition_of(e)))
""")


def test_fingerprints_are_stable_across_processes_and_ignore_memory_addresses(tmp_path: object) -> None:
    e = define(treatments=[Treatment("t", {"obj": Opaque()})], hypotheses=[hypothesis("acc", "maximize", mde=2)])
    here = str(__import__("pathlib").Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", FINGERPRINT_IN_A_SUBPROCESS, here], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == fingerprint(definition_of(e))  # mde only changes reporting


def test_definition_changes_are_described() -> None:
    old = definition_of(define(hypotheses=[hypothesis("acc", "maximize")]))
    new = definition_of(define(
        treatments=[Treatment("t", {"x": 2}), Treatment("u")], hypotheses=[hypothesis("acc", "maximize", alpha=0.01)],
    ))
    assert fingerprint(old) != fingerprint(new)
    assert definition_changes(old, new) == [
        "treatment 'u' added",
        "treatment 't': params {'x': 1} -> {'x': 2}",
        "hypothesis added: 'acc maximize' (alpha=0.01)",
        "hypothesis removed: 'acc maximize'",
    ]
    assert definition_changes(old, old) == []


def _saved(definition: dict[str, object]) -> tuple[MemoryStore, object]:
    store = MemoryStore()
    result = result_of({"baseline": {"acc": SAVED_A}, "t": {"acc": SAVED_A + 1}})
    record = store.save(NewRun((ExperimentRun("x::e", result, definition, fingerprint(definition)),), name="main"))
    return store, record


def test_new_and_changed_experiments_are_reported_not_compared() -> None:
    definition = definition_of(define(hypotheses=[hypothesis("acc", "maximize")]))
    store, record = _saved(definition)
    current = result_of({"baseline": {"acc": SAVED_A - 5}, "t": {"acc": SAVED_A - 4}})
    specs = [GateSpec("acc", "higher")]

    def load() -> object:
        return store.result(record, "x::e")

    new = gate_experiment("x::other", current, definition, specs, record, load)
    assert (new.status, new.failed, new.rows) == (NEW, False, ())
    assert gate_experiment("x::other", current, definition, specs, record, load, strict=True).failed
    changed_definition = definition_of(define(treatments=[Treatment("t", {"x": 3})]))
    changed = gate_experiment("x::e", current, changed_definition, specs, record, load)
    assert changed.status == CHANGED
    assert not changed.failed
    assert changed.rows == ()
    text = "\n".join(gate_lines(changed))
    assert "definition changed since saved run" in text
    assert "not compared" in text
    assert "treatment 't': params {'x': 1} -> {'x': 3}" in text
    assert "hypothesis removed: 'acc maximize'" in text
    compared = gate_experiment("x::e", current, definition, specs, record, load)
    assert compared.status == COMPARED
    assert compared.failed
    assert "2 of 2 compared metric(s) failed: 'acc' in 'baseline' regressed" in gate_failure(compared)


def test_an_unreadable_saved_result_fails_the_gate_naming_the_file() -> None:
    definition = definition_of(define())
    _, record = _saved(definition)

    def broken() -> object:
        raise ResultsError("/store/runs/r/0000.parquet: corrupt")

    report = gate_experiment("x::e", result_of({"baseline": {"acc": SAVED_A}}), definition, [], record,
                             broken, enforced=True)
    assert report.status == UNREADABLE
    assert report.failed
    assert "0000.parquet: corrupt" in gate_failure(report)
    assert not gate_experiment("x::e", result_of({"baseline": {"acc": SAVED_A}}), definition, [], record,
                               broken, enforced=False).failed
