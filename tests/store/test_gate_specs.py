"""Which metrics are gated, margins, definitions and their fingerprints, and what is not compared."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from scipy import stats
from test_gate_statistics import NOISE_A, SAVED_A, result_of

from pytest_crystallize import ConfigurationError, Experiment, ResultsError, Treatment, hypothesis
from pytest_crystallize.core.report.gate_text import gate_failure, gate_lines
from pytest_crystallize.core.store.definitions import definition_changes, definition_of, fingerprint
from pytest_crystallize.core.store.gate import CHANGED, COMPARED, NEW, UNREADABLE, gate_experiment
from pytest_crystallize.core.store.gate_specs import GateSpec, gate_specs, parse_margin
from pytest_crystallize.core.store.records import ExperimentRun, NewRun
from pytest_crystallize.core.store.stores import MemoryStore


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
    from pytest_crystallize.core.store.definitions import definition_of, fingerprint
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
    assert "2 of 2 gated metric(s) failed: 'acc' in 'baseline' regressed" in gate_failure(compared)


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


def _gated_store(definition: dict[str, object], gate: dict[str, dict[str, object]]) -> tuple[MemoryStore, object]:
    store = MemoryStore()
    result = result_of({"baseline": {"acc": SAVED_A, "loss": SAVED_A}, "t": {"acc": SAVED_A + 1, "loss": SAVED_A}})
    entry = ExperimentRun("x::e", result, definition, fingerprint(definition), gate)
    return store, store.save(NewRun((entry,), name="main"))


def _gate(*specs: GateSpec) -> dict[str, dict[str, object]]:
    return {s.metric: s.to_dict() for s in specs}


HYPOTHESES = [hypothesis("acc", "maximize"), hypothesis("loss", "minimize")]
SPECS = gate_specs(HYPOTHESES, None, "e")


def test_a_changed_treatment_leaves_the_baseline_gated() -> None:
    store, record = _gated_store(definition_of(define(hypotheses=HYPOTHESES)), _gate(*SPECS))
    changed = definition_of(define(treatments=[Treatment("t", {"x": 3})], hypotheses=HYPOTHESES))
    current = result_of({"baseline": {"acc": SAVED_A - 1 + NOISE_A, "loss": SAVED_A}, "t": {"acc": SAVED_A - 5,
                                                                                          "loss": SAVED_A}})
    report = gate_experiment("x::e", current, changed, SPECS, record, lambda: store.result(record, "x::e"))
    assert report.status == COMPARED
    assert [(r.condition, r.metric, r.status) for r in report.rows] == [
        ("baseline", "acc", "regressed"), ("t", "acc", "not compared"),
        ("baseline", "loss", "no change"), ("t", "loss", "not compared"),
    ]
    assert report.failed
    text = "\n".join(gate_lines(report))
    assert "note (acc: t; loss: t): 't' runs with other inputs than in the saved run: params {'x': 1} -> {'x': 3}" in (
        text)
    assert "definition changed since saved run" in text
    assert "treatment 't': params {'x': 1} -> {'x': 3}" in text
    # The baseline's p-value is corrected in its own family only: the untested rows are not in it.
    d = (SAVED_A - 1 + NOISE_A) - SAVED_A
    assert report.rows[0].p_worse_adjusted == pytest.approx(
        min(1.0, 2 * stats.ttest_1samp(d, 0, alternative="less").pvalue), rel=1e-9)


def test_a_baseline_change_reaches_the_treatments_that_inherit_it() -> None:
    two = [Treatment("t", {"x": 1}), Treatment("u", {"y": 5})]
    saved_def = definition_of(define(params={"x": 0, "y": 0}, treatments=two, hypotheses=HYPOTHESES))
    store = MemoryStore()
    values = {"acc": SAVED_A, "loss": SAVED_A}
    saved = result_of({"baseline": values, "t": values, "u": values})
    record = store.save(NewRun((ExperimentRun("x::e", saved, saved_def, fingerprint(saved_def), _gate(*SPECS)),)))
    current_def = definition_of(define(params={"x": 2, "y": 0}, treatments=two, hypotheses=HYPOTHESES))
    report = gate_experiment("x::e", saved, current_def, SPECS, record, lambda: store.result(record, "x::e"))
    # 't' sets x itself, so the baseline's new x does not reach it; 'u' inherits it.
    assert {(r.condition, r.status) for r in report.rows} == {
        ("baseline", "not compared"), ("t", "no change"), ("u", "not compared")}
    assert "  baseline: params {'x': 0, 'y': 0} -> {'x': 2, 'y': 0}" in report.notes
    everything = definition_of(define(params={"x": 2, "y": 1}, treatments=two, hypotheses=HYPOTHESES))
    report = gate_experiment("x::e", saved, everything, SPECS, record, lambda: store.result(record, "x::e"))
    assert (report.status, report.rows, report.failed) == (CHANGED, (), False)
    assert gate_experiment("x::e", saved, everything, SPECS, record, lambda: store.result(record, "x::e"),
                           strict=True, margin=0.1).failed


def test_a_changed_hypothesis_only_stops_comparing_metrics_whose_direction_changed() -> None:
    store, record = _gated_store(definition_of(define(hypotheses=HYPOTHESES)), _gate(*SPECS))
    flipped = [hypothesis("acc", "maximize", alpha=0.01), hypothesis("loss", "maximize"),
               hypothesis("latency", "minimize")]
    specs = gate_specs(flipped, None, "e")
    current = result_of({"baseline": {"acc": SAVED_A - 1 + NOISE_A, "loss": SAVED_A + 1, "latency": SAVED_A},
                         "t": {"acc": SAVED_A + 1, "loss": SAVED_A, "latency": SAVED_A}})
    report = gate_experiment("x::e", current, definition_of(define(hypotheses=flipped)), specs, record,
                             lambda: store.result(record, "x::e"))
    assert [(r.condition, r.metric, r.status) for r in report.rows] == [
        ("baseline", "acc", "regressed"), ("t", "acc", "no change"),
        ("baseline", "loss", "not compared"), ("t", "loss", "not compared"),
        ("baseline", "latency", "not compared"), ("t", "latency", "not compared"),
    ]
    assert report.rows[2].note == "hypotheses changed its good direction: lower was better, now higher"
    assert report.rows[4].note == "hypotheses changed and the saved run did not gate this metric"
    assert report.failed
    assert "  hypothesis added: 'latency minimize'" in report.notes


def test_a_best_hypothesis_gates_its_metric_the_way_it_says_is_better() -> None:
    # direction="best" with better="lower" says lower is good as plainly as "minimize" does: a regression
    # of that metric must not pass the gate as "nothing gated".
    specs = gate_specs([hypothesis("loss", "best", better="lower"), hypothesis("acc", "best")], None, "here")
    assert [(s.metric, s.better) for s in specs] == [("loss", "lower"), ("acc", "higher")]
    assert specs[0].source == "hypothesis 'loss best'"


def test_an_experiment_with_nothing_gated_is_told_every_hypothesis_that_gives_a_direction() -> None:
    definition = definition_of(define(hypotheses=[hypothesis("acc", "two-sided")]))
    store, record = _saved(definition)
    current = result_of({"baseline": {"acc": SAVED_A}, "t": {"acc": SAVED_A + 1}})
    report = gate_experiment("x::e", current, definition, [], record, lambda: store.result(record, "x::e"))
    assert report.rows == ()
    assert report.notes[-1] == ("no metric has a known good direction: add a maximize, minimize, no_worse or best "
                                "hypothesis, or gate= to the marker")
