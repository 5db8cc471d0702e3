"""ExperimentResult: columns, DataFrame, and JSON / Parquet round trips."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_crystallize import (
    ExperimentResult,
    FrozenContext,
    ResultsError,
    Treatment,
    hypothesis,
    run_experiment,
)

REPLICATES = 5
SPECIAL = {0: math.nan, 1: math.inf, 2: -math.inf, 3: 0.0, 4: -0.0}


def _exp_rich(ctx: FrozenContext) -> None:
    if ctx.condition == "up" and ctx.replicate == 3:
        raise ValueError("planned failure")
    noise = ctx.rng.normal(size=2)
    ctx.metrics.add("score", 10.0 + noise[0] + ctx.get("shift", 0.0) * (1.0 + 0.2 * noise[1]))
    for epoch in (1, 2):
        ctx.record("loss", 1.0 / epoch + ctx.replicate, tags={"epoch": epoch, "note": "é ✓"})
    ctx.metrics.add("odd", SPECIAL[ctx.replicate])


@pytest.fixture(scope="module")
def rich() -> ExperimentResult:
    return run_experiment(
        _exp_rich,
        replicates=REPLICATES,
        seed=321,
        treatments=[Treatment("up", {"shift": 3.0})],
        hypotheses=[
            hypothesis("score", "maximize"),
            hypothesis("never_recorded", "maximize"),
            hypothesis("odd", "two-sided"),
        ],
    )


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def _same_field(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return _same_float(a, b)
    return bool(a == b)


def _assert_same(original: ExperimentResult, loaded: ExperimentResult) -> None:
    assert loaded.experiment == original.experiment
    assert loaded.conditions == original.conditions
    assert loaded.metrics == original.metrics
    for column in ("condition_codes", "replicates", "metric_codes"):
        np.testing.assert_array_equal(getattr(loaded, column), getattr(original, column))
    assert loaded.values.dtype == np.float64
    assert len(loaded.values) == len(original.values)
    assert all(
        _same_float(a, b) for a, b in zip(original.values.tolist(), loaded.values.tolist(), strict=True)
    )
    assert loaded.tags == original.tags
    assert loaded.errors == original.errors
    assert len(loaded.verdicts) == len(original.verdicts)
    for a, b in zip(original.verdicts, loaded.verdicts, strict=True):
        for f in dataclasses.fields(a):
            assert _same_field(getattr(a, f.name), getattr(b, f.name)), f.name
    assert loaded.provenance == original.provenance
    assert loaded == original


# -- the result as built -------------------------------------------------------------------


def test_the_fixture_has_what_the_round_trips_need(rich: ExperimentResult) -> None:
    # Guard: the round-trip tests below are only meaningful with all of these.
    assert any(math.isnan(v) for v in rich.values.tolist())
    assert math.inf in rich.values.tolist()
    assert -math.inf in rich.values.tolist()
    assert any(t is not None for t in rich.tags)
    assert None in rich.tags
    assert len(rich.errors) == 1
    assert len(rich.verdicts) == 3
    assert rich.verdicts[0].holds
    assert math.isnan(rich.verdicts[1].p_value)


def test_columns_are_read_only_numpy_arrays_of_equal_length(rich: ExperimentResult) -> None:
    columns = (rich.condition_codes, rich.replicates, rich.metric_codes, rich.values)
    assert all(isinstance(c, np.ndarray) for c in columns)
    assert rich.values.dtype == np.float64
    assert all(np.issubdtype(c.dtype, np.integer) for c in columns[:3])
    assert {len(c) for c in columns} == {len(rich.tags)} == {len(rich)}
    with pytest.raises(ValueError, match=re.escape("read-only")):
        rich.values[0] = 1.0


def test_number_of_records_is_what_the_experiment_recorded(rich: ExperimentResult) -> None:
    # 2 conditions x 5 replicates, one failing before recording; each other one
    # records score once, loss twice and odd once.
    assert len(rich) == (2 * REPLICATES - 1) * 4


def test_select_returns_replicates_and_values_of_one_metric_and_condition(rich: ExperimentResult) -> None:
    reps, values = rich.select("loss", "up")
    assert sorted(reps.tolist()) == sorted([0, 1, 2, 4] * 2)
    assert sorted(values.tolist()) == sorted(1.0 / e + r for r in (0, 1, 2, 4) for e in (1, 2))
    empty_reps, empty_values = rich.select("nope", "up")
    assert len(empty_reps) == len(empty_values) == 0


# -- DataFrame ---------------------------------------------------------------------------


def test_to_dataframe_has_one_row_per_record_and_the_documented_columns(rich: ExperimentResult) -> None:
    frame = rich.to_dataframe()
    assert list(frame.columns) == ["experiment", "condition", "replicate", "metric", "value", "tags"]
    assert len(frame) == len(rich) == (2 * REPLICATES - 1) * 4
    assert set(frame["experiment"]) == {"_exp_rich"}


def test_to_dataframe_rows_match_what_each_replicate_recorded(rich: ExperimentResult) -> None:
    frame = rich.to_dataframe()
    loss = frame[frame["metric"] == "loss"]
    rows = sorted(
        (str(c), int(r), float(v), t["epoch"])
        for c, r, v, t in zip(loss["condition"], loss["replicate"], loss["value"], loss["tags"], strict=True)
    )
    expected = sorted(
        (c, r, 1.0 / e + r, e)
        for c in ("baseline", "up")
        for r in range(REPLICATES)
        for e in (1, 2)
        if not (c == "up" and r == 3)
    )
    assert rows == expected
    assert all(t["note"] == "é ✓" for t in loss["tags"])
    score = frame[frame["metric"] == "score"]
    assert list(score["tags"]) == [None] * len(score)
    odd = frame[(frame["metric"] == "odd") & (frame["condition"] == "baseline")]
    by_rep = dict(zip(odd["replicate"], odd["value"], strict=True))
    assert all(_same_float(by_rep[r], SPECIAL[r]) for r in range(REPLICATES))


# -- JSON ---------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip(rich: ExperimentResult) -> None:
    _assert_same(rich, ExperimentResult.from_dict(rich.to_dict()))


def test_to_json_is_strict_json(rich: ExperimentResult) -> None:
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    json.loads(rich.to_json(), parse_constant=refuse)


def test_to_json_from_json_round_trip_through_a_file(rich: ExperimentResult, tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    text = rich.to_json(path, indent=2)
    assert path.read_text(encoding="utf-8") == text
    _assert_same(rich, ExperimentResult.from_json(path))
    _assert_same(rich, ExperimentResult.from_json(str(path)))


def test_json_text_round_trip_keeps_nan_and_infinities(rich: ExperimentResult) -> None:
    loaded = ExperimentResult.from_dict(json.loads(rich.to_json()))
    _, odd = loaded.select("odd", "baseline")
    _, expected = rich.select("odd", "baseline")
    assert all(_same_float(a, b) for a, b in zip(odd.tolist(), expected.tolist(), strict=True))


# -- Parquet -------------------------------------------------------------------------------


def test_to_parquet_from_parquet_round_trip(rich: ExperimentResult, tmp_path: Path) -> None:
    path = tmp_path / "result.parquet"
    rich.to_parquet(path)
    _assert_same(rich, ExperimentResult.from_parquet(path))
    _assert_same(rich, ExperimentResult.from_parquet(str(path)))


def test_parquet_and_json_load_to_the_same_result(rich: ExperimentResult, tmp_path: Path) -> None:
    rich.to_parquet(tmp_path / "r.parquet")
    rich.to_json(tmp_path / "r.json")
    _assert_same(
        ExperimentResult.from_json(tmp_path / "r.json"), ExperimentResult.from_parquet(tmp_path / "r.parquet")
    )


def test_round_trips_of_a_condition_without_records(tmp_path: Path) -> None:
    def fn(ctx: FrozenContext) -> None:
        if ctx.condition == "middle":
            raise RuntimeError("always fails")
        ctx.metrics.add(f"m_{ctx.condition}", ctx.replicate)

    result = run_experiment(fn, replicates=2, treatments=[Treatment("middle"), Treatment("last")])
    result.to_parquet(tmp_path / "r.parquet")
    for loaded in (
        ExperimentResult.from_parquet(tmp_path / "r.parquet"),
        ExperimentResult.from_dict(json.loads(result.to_json())),
    ):
        _assert_same(result, loaded)
        assert loaded.select("m_last", "last")[1].tolist() == [0.0, 1.0]
        assert len(loaded.select("m_last", "middle")[1]) == 0


def test_round_trips_of_a_result_without_records(tmp_path: Path) -> None:
    result = run_experiment(lambda ctx: None, replicates=2, treatments=[Treatment("t")])
    assert len(result) == 0
    result.to_parquet(tmp_path / "empty.parquet")
    _assert_same(result, ExperimentResult.from_parquet(tmp_path / "empty.parquet"))
    _assert_same(result, ExperimentResult.from_dict(json.loads(result.to_json())))
    assert len(result.to_dataframe()) == 0


# -- files that cannot be read ---------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_corrupt_json_gives_results_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "corrupt.json", '{"format": "pytest-crystallize/result", ')
    with pytest.raises(ResultsError, match=re.escape("corrupt.json")):
        ExperimentResult.from_json(path)


def test_non_utf8_bytes_give_results_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultsError, match=re.escape("binary.json")):
        ExperimentResult.from_json(path)


def test_json_of_another_format_gives_results_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "other.json", json.dumps({"format": "someone-else", "version": 1}))
    with pytest.raises(ResultsError, match=re.escape("other.json")):
        ExperimentResult.from_json(path)


def test_json_that_is_not_an_object_gives_results_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.json", "[1, 2, 3]")
    with pytest.raises(ResultsError, match=re.escape("list.json")):
        ExperimentResult.from_json(path)


def test_an_unsupported_format_version_is_refused(rich: ExperimentResult, tmp_path: Path) -> None:
    data = rich.to_dict()
    data["version"] = 999
    path = _write(tmp_path / "future.json", json.dumps(data))
    with pytest.raises(ResultsError, match=re.escape("future.json")) as info:
        ExperimentResult.from_json(path)
    assert "999" in str(info.value)


@pytest.mark.parametrize(
    "damage",
    ["drop_records", "short_values", "bad_value", "drop_provenance", "bad_error_entry"],
)
def test_malformed_json_results_give_results_error_naming_the_file(
    rich: ExperimentResult, tmp_path: Path, damage: str
) -> None:
    data = rich.to_dict()
    if damage == "drop_records":
        del data["records"]
    elif damage == "short_values":
        data["records"]["value"] = data["records"]["value"][:-1]
    elif damage == "bad_value":
        data["records"]["value"][0] = "lots"
    elif damage == "drop_provenance":
        del data["provenance"]
    else:
        data["errors"][0]["unexpected"] = 1
    path = _write(tmp_path / f"{damage}.json", json.dumps(data))
    with pytest.raises(ResultsError, match=re.escape(f"{damage}.json")):
        ExperimentResult.from_json(path)


def test_a_missing_json_file_gives_results_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ResultsError, match=re.escape("nowhere.json")):
        ExperimentResult.from_json(path)


def test_a_missing_parquet_file_gives_results_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.parquet"
    with pytest.raises(ResultsError, match=re.escape("nowhere.parquet")):
        ExperimentResult.from_parquet(path)


def test_a_non_parquet_file_gives_results_error_naming_it(rich: ExperimentResult, tmp_path: Path) -> None:
    text_file = _write(tmp_path / "notes.parquet", "just some text, not parquet")
    with pytest.raises(ResultsError, match=re.escape("notes.parquet")):
        ExperimentResult.from_parquet(text_file)
    json_file = tmp_path / "result.json"
    rich.to_json(json_file)
    with pytest.raises(ResultsError, match=re.escape("result.json")):
        ExperimentResult.from_parquet(json_file)


def test_a_parquet_file_written_by_someone_else_gives_results_error(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"value": [1.0, 2.0]}), path)
    with pytest.raises(ResultsError, match=re.escape("foreign.parquet")):
        ExperimentResult.from_parquet(path)


def test_results_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("gone.json")):
        ExperimentResult.from_json(tmp_path / "gone.json")
