"""The Parquet file of a result: the documented layout, and files written by earlier versions still read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_crystallize import ExperimentResult, FrozenContext, Treatment, run_experiment
from pytest_crystallize.core.arrow_columns import tags_array


def _exp_tagged(ctx: FrozenContext) -> None:
    ctx.metrics.add("score", ctx.replicate + ctx.get("shift", 0.0))
    for epoch in (1, 2, 3):
        tags = None if epoch == 3 else {"epoch": epoch, "note": "é ✓"}
        ctx.record("loss", 1.0 / epoch + ctx.replicate, tags=tags)


@pytest.fixture(scope="module")
def tagged() -> ExperimentResult:
    return run_experiment(_exp_tagged, replicates=4, seed=5, treatments=[Treatment("up", {"shift": 1.0})])


def _as_earlier_versions_wrote(result: ExperimentResult, path: Path) -> None:
    """The file as pytest-crystallize wrote it before tags went to the writer as codes: plain text a value."""
    table = pa.table({
        "condition": pa.DictionaryArray.from_arrays(
            pa.array(result.condition_codes, pa.int32()), pa.array(result.conditions, pa.string())),
        "replicate": pa.array(result.replicates, pa.int64()),
        "metric": pa.DictionaryArray.from_arrays(
            pa.array(result.metric_codes, pa.int32()), pa.array(result.metrics, pa.string())),
        "value": pa.array(result.values, pa.float64()),
        "tags": pa.array(list(result.tags), pa.string()),
    })
    header = {key: value for key, value in result.to_dict().items() if key != "records"}
    table = table.replace_schema_metadata({b"pytest_crystallize": json.dumps(header, allow_nan=False).encode()})
    pq.write_table(table, path, use_dictionary=["condition", "metric", "tags"])


def test_the_file_has_the_documented_columns_and_types(tagged: ExperimentResult, tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    tagged.to_parquet(path)
    schema = pq.read_schema(path)
    assert schema.names == ["condition", "replicate", "metric", "value", "tags"]
    assert schema.field("condition").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("replicate").type == pa.int64()
    assert schema.field("metric").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("value").type == pa.float64()
    assert schema.field("tags").type == pa.string()  # docs/reference/store.md: a string column
    header = json.loads(schema.metadata[b"pytest_crystallize"])
    assert header["format"] == "pytest-crystallize/result"
    assert header["conditions"] == ["baseline", "up"]
    tags = pq.read_table(path).column("tags").to_pylist()
    assert tags == list(tagged.tags)
    assert tags.count(None) == 2 * 4 * 2  # score and the third epoch, both conditions, 4 replicates


def test_the_file_matches_the_one_earlier_versions_wrote(tagged: ExperimentResult, tmp_path: Path) -> None:
    tagged.to_parquet(tmp_path / "new.parquet")
    _as_earlier_versions_wrote(tagged, tmp_path / "old.parquet")
    new, old = pq.ParquetFile(tmp_path / "new.parquet"), pq.ParquetFile(tmp_path / "old.parquet")
    assert new.schema_arrow.equals(old.schema_arrow, check_metadata=True)
    assert new.read().equals(old.read())
    assert new.metadata.num_row_groups == old.metadata.num_row_groups == 1
    for index in range(new.metadata.num_columns):
        a, b = new.metadata.row_group(0).column(index), old.metadata.row_group(0).column(index)
        assert (a.path_in_schema, a.physical_type, a.encodings, a.has_dictionary_page) == (
            b.path_in_schema, b.physical_type, b.encodings, b.has_dictionary_page)
        assert a.statistics.null_count == b.statistics.null_count
        assert (a.statistics.min, a.statistics.max) == (b.statistics.min, b.statistics.max)


def test_a_file_earlier_versions_wrote_reads_back(tagged: ExperimentResult, tmp_path: Path) -> None:
    _as_earlier_versions_wrote(tagged, tmp_path / "old.parquet")
    loaded = ExperimentResult.from_parquet(tmp_path / "old.parquet")
    assert loaded.tags == tagged.tags
    np.testing.assert_array_equal(loaded.values, tagged.values)
    np.testing.assert_array_equal(loaded.condition_codes, tagged.condition_codes)
    assert loaded.verdicts == tagged.verdicts


def test_a_pyarrow_without_add_key_value_metadata_writes_the_same_file(
    tagged: ExperimentResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tagged.to_parquet(tmp_path / "new.parquet")
    monkeypatch.delattr(pq.ParquetWriter, "add_key_value_metadata")  # pyarrow 15 and 16
    tagged.to_parquet(tmp_path / "fallback.parquet")
    new, fallback = pq.ParquetFile(tmp_path / "new.parquet"), pq.ParquetFile(tmp_path / "fallback.parquet")
    assert new.schema_arrow.equals(fallback.schema_arrow, check_metadata=True)
    assert new.read().equals(fallback.read())
    assert ExperimentResult.from_parquet(tmp_path / "fallback.parquet") == tagged


def test_a_result_without_tags_round_trips(tmp_path: Path) -> None:
    result = run_experiment(lambda ctx: ctx.metrics.add("m", ctx.replicate), replicates=3)
    result.to_parquet(tmp_path / "r.parquet")
    assert pq.read_schema(tmp_path / "r.parquet").field("tags").type == pa.string()
    assert ExperimentResult.from_parquet(tmp_path / "r.parquet") == result


def test_writing_imports_neither_pandas_nor_pyarrow_compute(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pytest_crystallize import run_experiment

        def tagged(ctx):
            ctx.record("m", 1.0, tags={{"k": ctx.replicate % 2}})
            ctx.record("m", 2.0)

        run_experiment(tagged, replicates=3).to_parquet({str(tmp_path / "r.parquet")!r})
        print(sorted(m for m in ("pandas", "pyarrow.compute") if m in sys.modules))
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"


@pytest.mark.parametrize("texts", [0, 1, 100, 126, 127, 128, 1000, 32_766, 32_767, 32_768, 40_000])
def test_tag_codes_hold_every_distinct_text(texts: int) -> None:
    distinct = [json.dumps({"i": i}) for i in range(texts)]
    tags = [None, *distinct, None, *distinct[:5]]
    array = tags_array(tags)
    assert array.dictionary_decode().to_pylist() == tags
    if texts in (100, 1000, 40_000):  # far from a boundary: the narrowest type (one byte a value, usually)
        assert array.type.index_type == {100: pa.int8(), 1000: pa.int16(), 40_000: pa.int32()}[texts]


def test_many_distinct_tags_round_trip(tmp_path: Path) -> None:
    def many(ctx: FrozenContext) -> None:
        for i in range(300):
            ctx.record("m", float(i), tags={"i": i} if i % 7 else None)

    result = run_experiment(many, replicates=2)
    result.to_parquet(tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").column("tags").to_pylist() == list(result.tags)
    assert ExperimentResult.from_parquet(tmp_path / "r.parquet") == result


def _pool_in_child(code: str, environment: dict[str, str]) -> list[str]:
    """The backend of pyarrow's default pool and ARROW_DEFAULT_MEMORY_POOL, after ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import os
        import pyarrow as pa
        print(pa.default_memory_pool().backend_name, os.environ.get("ARROW_DEFAULT_MEMORY_POOL"))
    """)
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | environment
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, env=env)
    assert child.returncode == 0, child.stderr
    return child.stdout.split()


LOAD = """
from pytest_crystallize.core.arrow_columns import load_pyarrow_on_system_allocator
load_pyarrow_on_system_allocator()
"""


def test_the_save_loads_pyarrow_on_the_system_allocator_and_leaves_the_environment_as_it_was() -> None:
    assert _pool_in_child(LOAD, {}) == ["system", "None"]


def test_a_user_s_allocator_or_a_pyarrow_loaded_already_is_left_alone() -> None:
    default = _pool_in_child("", {})[0]
    assert _pool_in_child("import pyarrow\n" + LOAD, {}) == [default, "None"]
    others = [name for name in pa.supported_memory_backends() if name != "system"]
    if others:
        assert _pool_in_child(LOAD, {"ARROW_DEFAULT_MEMORY_POOL": others[0]}) == [others[0], others[0]]
