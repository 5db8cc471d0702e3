"""Explore, then confirm: pre-registration before the run, fresh seed streams, and what taints a confirmation."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pytest_crystallize import Treatment, hypothesis, run_experiment
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.report.text import summarize
from pytest_crystallize.core.runner import ExperimentRunner
from pytest_crystallize.core.store.confirmations import ConfirmationLedger, confirmation_of, confirmation_seed
from pytest_crystallize.core.store.definitions import definition_of, fingerprint
from pytest_crystallize.core.store.records import ExperimentRun, NewRun
from pytest_crystallize.core.store.stores import DirectoryStore
from pytest_crystallize.errors import ResultsError

IDENTITY = "tests/test_x.py::experiment_shift"


def _shift(ctx):
    ctx.metrics.add("x", ctx.rng.normal() + ctx.get("shift", 0.0))


def _define(shift: float = 1.0, direction: str = "maximize", seed: int = 7) -> Experiment:
    return Experiment.define(
        _shift, name="experiment_shift", replicates=20, seed=seed,
        treatments=[Treatment("t", {"shift": shift})], hypotheses=[hypothesis("x", direction)],
    )


def _run(experiment: Experiment):  # type: ignore[no-untyped-def]
    return ExperimentRunner(experiment).run()


def _explore(root: Path, experiment: Experiment) -> str:
    """Save an exploratory run of ``experiment`` in the store; return its id."""
    result = _run(experiment)
    definition = definition_of(experiment)
    saved = DirectoryStore(root).save(NewRun((ExperimentRun(IDENTITY, result, definition, fingerprint(definition)),)))
    return saved.id


def _confirm(root: Path, experiment: Experiment):  # type: ignore[no-untyped-def]
    return ConfirmationLedger(root).run(IDENTITY, experiment, _run, saved_runs=DirectoryStore(root).listing().runs)


def test_confirmation_seeds_are_a_stream_of_their_own() -> None:
    words = np.random.SeedSequence([7, 0x636F6E6669726D, 0]).generate_state(2, np.uint32)
    assert confirmation_seed(7, 0) == (int(words[0]) << 31) | (int(words[1]) >> 1)
    seeds = {confirmation_seed(7, k) for k in range(50)}
    assert len(seeds) == 50
    assert 7 not in seeds
    assert all(0 <= s < 2**63 for s in seeds)


def test_the_pre_registration_is_written_before_the_first_replicate_runs(tmp_path: Path) -> None:
    experiment = _define()
    seen: list[dict[str, object]] = []

    def run(chosen: Experiment):  # type: ignore[no-untyped-def]
        (record,) = (tmp_path / "confirm").glob("*/attempt-1.json")
        seen.append(json.loads(record.read_text()))
        return _run(chosen)

    result = ConfirmationLedger(tmp_path).run(IDENTITY, experiment, run)
    (record,) = seen
    assert record["fingerprint"] == fingerprint(definition_of(experiment))
    assert record["definition"]["hypotheses"][0]["metric"] == "x"
    assert record["replicates"] == 20
    assert record["seed"] == confirmation_seed(7, 0) == result.provenance.master_seed
    verdict = result.verdicts[0]
    assert verdict.details["confirmation"]["confirmed"]
    assert verdict.details["design"] == "fixed design; confirmatory attempt 1: pre-registered, fresh data"
    assert confirmation_of(result) is None


def test_confirmatory_replicates_share_no_seed_with_the_exploratory_run(tmp_path: Path) -> None:
    experiment = _define()
    _explore(tmp_path, experiment)
    explored = set(_run(experiment).provenance.replicate_seeds())
    confirmed = _confirm(tmp_path, experiment)
    assert not explored & set(confirmed.provenance.replicate_seeds())
    c = confirmed.verdicts[0].details["confirmation"]
    assert c["fresh"]
    assert c["confirmed"]


def test_concurrent_confirmations_never_share_an_attempt(tmp_path: Path) -> None:
    ledger = ConfirmationLedger(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        attempts = list(pool.map(lambda _: ledger.preregister(IDENTITY, _define())[0].attempt, range(16)))
    assert sorted(attempts) == list(range(16))
    assert len({a.seed for a in ledger.attempts(IDENTITY)}) == 16


def test_a_hypothesis_changed_after_the_exploratory_run_is_stated(tmp_path: Path) -> None:
    run_id = _explore(tmp_path, _define(direction="two-sided"))
    result = _confirm(tmp_path, _define(direction="maximize"))
    verdict = result.verdicts[0]
    assert verdict.holds  # the test on fresh data is what it is ...
    c = verdict.details["confirmation"]
    assert not c["confirmed"]  # ... but it confirms nothing that was explored
    assert c["problems"][0].startswith(f"changed after the exploratory run {run_id}: hypothesis added: 'x maximize'")
    assert "NOT clean" in verdict.details["design"]
    notes = summarize(result)["notes"]
    assert "confirmation: attempt 1 is NOT clean (pre-registered: yes; fresh data: yes)" in notes
    assert confirmation_of(result).startswith("confirmatory attempt 1 is not clean: changed after")


def test_confirming_again_after_a_failed_attempt_is_not_clean(tmp_path: Path) -> None:
    failed = _confirm(tmp_path, _define(shift=0.0))
    assert not failed.passed
    again = _confirm(tmp_path, _define(shift=0.0))
    c = again.verdicts[0].details["confirmation"]
    assert c["attempt"] == 2
    assert not c["confirmed"]
    assert any("attempt 1 (" in p and "did not confirm" in p for p in c["problems"]), c["problems"]


def test_an_interrupted_attempt_taints_the_next(tmp_path: Path) -> None:
    ledger = ConfirmationLedger(tmp_path)
    ledger.preregister(IDENTITY, _define())  # pre-registered, then never finished: no outcome
    c = _confirm(tmp_path, _define()).verdicts[0].details["confirmation"]
    assert not c["confirmed"]
    assert any("has no recorded outcome" in p for p in c["problems"])


def test_replicates_a_saved_run_already_used_are_reused_data(tmp_path: Path) -> None:
    reused = Experiment.define(
        _shift, name="experiment_shift", replicates=20, seed=confirmation_seed(7, 0),
        treatments=[Treatment("t", {"shift": 1.0})], hypotheses=[hypothesis("x", "maximize")],
    )
    run_id = _explore(tmp_path, reused)
    c = _confirm(tmp_path, _define()).verdicts[0].details["confirmation"]
    assert not c["fresh"]
    assert c["problems"][0] == f"data reused: saved run {run_id} already ran seed {confirmation_seed(7, 0)}"


def test_a_ledger_that_cannot_be_written_pre_registers_nothing(tmp_path: Path) -> None:
    (tmp_path / "confirm").write_text("a file where the ledger goes")
    with pytest.raises(ResultsError, match="the confirmation ledger cannot be written"):
        ConfirmationLedger(tmp_path).preregister(IDENTITY, _define())


def test_run_experiment_confirms_in_a_store(tmp_path: Path) -> None:
    result = run_experiment(
        _shift, replicates=20, seed=7, treatments=[Treatment("t", {"shift": 1.0})],
        hypotheses=[hypothesis("x", "maximize")], confirm=tmp_path,
    )
    assert result.verdicts[0].details["confirmation"]["confirmed"]
    assert result.provenance.master_seed == confirmation_seed(7, 0)
    assert len(list((tmp_path / "confirm").glob("*/attempt-1.*json"))) == 2  # the record and its outcome


def test_a_cross_validated_confirmation_names_its_design_in_words(tmp_path: Path) -> None:
    from pytest_crystallize import cv

    experiment = Experiment.define(
        _shift, name="experiment_shift", design=cv(k=4, repeats=3), seed=7,
        treatments=[Treatment("t", {"shift": 1.0})], hypotheses=[hypothesis("x", "maximize")],
    )
    result = ConfirmationLedger(tmp_path).run(IDENTITY, experiment, _run)
    assert result.verdicts[0].details["design"] == (
        "design cv(k=4, repeats=3); confirmatory attempt 1: pre-registered, fresh data"
    )


_STOP_AT: list[int] = []


def _interruptible(ctx):  # type: ignore[no-untyped-def]
    if _STOP_AT and ctx.replicate == _STOP_AT[0]:
        raise KeyboardInterrupt
    ctx.metrics.add("x", ctx.rng.normal() + ctx.get("shift", 0.0))


def test_resuming_an_interrupted_confirmation_completes_its_attempt_cleanly(tmp_path: Path) -> None:
    # Ctrl-C, then --crystallize-resume: the same pre-registration and seed, the journal's replicates
    # kept, and the result of the attempt had it not been interrupted. Abandoning it stays "not clean".
    options = {
        "name": "experiment_shift", "replicates": 20, "seed": 7, "treatments": [Treatment("t", {"shift": 1.0})],
        "hypotheses": [hypothesis("x", "maximize")], "confirm": tmp_path / "store", "journal": tmp_path / "store",
    }
    _STOP_AT[:] = [12]
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_interruptible, **options)
    finally:
        _STOP_AT.clear()
    resumed = run_experiment(_interruptible, resume=True, **options)
    c = resumed.verdicts[0].details["confirmation"]
    assert c["confirmed"], c["problems"]
    assert c["attempt"] == 1
    assert any("resumes attempt 1" in note for note in c["notes"])
    assert resumed.provenance.resumed == 24  # replicates 0-11 of both conditions came from the journal
    assert resumed.provenance.master_seed == confirmation_seed(7, 0)
    whole = run_experiment(_interruptible, **{**options, "confirm": tmp_path / "other", "journal": None})
    assert resumed.values.tolist() == whole.values.tolist()
    assert [v.p_value for v in resumed.verdicts] == [v.p_value for v in whole.verdicts]

    again = run_experiment(_interruptible, resume=True, **options)  # attempt 1 has its outcome now
    assert again.verdicts[0].details["confirmation"]["attempt"] == 2


def _slow(ctx):  # type: ignore[no-untyped-def]
    import time

    time.sleep(0.02)
    _shift(ctx)


def test_a_confirmation_the_budget_cut_short_is_completed_by_resuming_it(tmp_path: Path) -> None:
    # A fixed design stopped by --crystallize-budget is not valid yet; the journal keeps its replicates
    # and resuming completes the same attempt, cleanly, as the budget's note promises.
    options = {
        "name": "experiment_shift", "replicates": 40, "seed": 7, "treatments": [Treatment("t", {"shift": 1.0})],
        "hypotheses": [hypothesis("x", "maximize")], "confirm": tmp_path / "store", "journal": tmp_path / "store",
    }
    cut = run_experiment(_slow, budget=0.3, **options)
    assert cut.provenance.stopped_by == "budget"
    assert not cut.passed
    completed = run_experiment(_slow, resume=True, **options)
    c = completed.verdicts[0].details["confirmation"]
    assert c["confirmed"], c["problems"]
    assert c["attempt"] == 1
    assert (completed.provenance.resumed or 0) > 0
    whole = run_experiment(_slow, **{**options, "confirm": tmp_path / "other", "journal": None})
    assert completed.values.tolist() == whole.values.tolist()
    assert completed.passed


def test_the_ledger_s_files_count_attempts_from_one_as_the_verdicts_do(tmp_path: Path) -> None:
    first = _confirm(tmp_path, _define(shift=0.0))
    second = _confirm(tmp_path, _define(shift=0.0))
    assert [r.verdicts[0].details["confirmation"]["attempt"] for r in (first, second)] == [1, 2]
    directory = next((tmp_path / "confirm").iterdir())
    assert sorted(p.name for p in directory.iterdir()) == [
        "attempt-1.json", "attempt-1.outcome.json", "attempt-2.json", "attempt-2.outcome.json",
    ]
    assert json.loads((directory / "attempt-2.json").read_text())["attempt"] == 2
    # Numbers on the page are one-based; the seed streams are those of the first and second attempt as before.
    assert [r.provenance.master_seed for r in (first, second)] == [confirmation_seed(7, 0), confirmation_seed(7, 1)]


def test_a_ledger_written_with_attempts_counted_from_zero_is_read_and_continued(tmp_path: Path) -> None:
    old = _confirm(tmp_path, _define(shift=0.0))  # then rename its files as an older version wrote them
    directory = next((tmp_path / "confirm").iterdir())
    record = json.loads((directory / "attempt-1.json").read_text())
    record["attempt"] = 0
    record.pop("counted_from", None)
    (directory / "attempt-0.json").write_text(json.dumps(record))
    (directory / "attempt-1.outcome.json").rename(directory / "attempt-0.outcome.json")
    (directory / "attempt-1.json").unlink()
    assert old.provenance.master_seed == confirmation_seed(7, 0)

    again = _confirm(tmp_path, _define(shift=0.0))
    c = again.verdicts[0].details["confirmation"]
    assert c["attempt"] == 2
    assert again.provenance.master_seed == confirmation_seed(7, 1)  # fresh: not the old attempt's seed
    assert any(p.startswith("attempt 1 (") and "did not confirm" in p for p in c["problems"]), c["problems"]
    assert (directory / "attempt-2.json").is_file()
    assert (directory / "attempt-2.outcome.json").is_file()
    assert [a.attempt for a in ConfirmationLedger(tmp_path).attempts(IDENTITY)] == [0, 1]
