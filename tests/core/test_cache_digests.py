"""Content digests and code fingerprints: equal content, equal digest, in every process; different content differs."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pytest_crystallize import UndigestableError
from pytest_crystallize.core.cache.code import code_fingerprint
from pytest_crystallize.core.cache.digests import digest_of


def _d(value: Any) -> str:
    return digest_of(value, "value")


VALUES = """
    import numpy as np, pandas as pd, pyarrow as pa
    values = [
        None, True, 3, 2.5, "text", b"raw", [1, "a"], (1, 2), {"b": 1, "a": [2.0]},
        {"set", "of", "strings", "whose", "order", "changes"}, frozenset({"x", "y"}),
        np.arange(12, dtype=np.float32).reshape(3, 4), np.int16(7),
        pd.DataFrame({"s": ["a", None, "c"], "x": [1.0, 2.0, 3.0], "c": pd.Categorical(["u", "v", "u"])},
                     index=pd.Index(["r1", "r2", "r3"], name="row")),
        pd.Series([1, 2], name="n", dtype="Int64"),
        pa.table({"x": [1, 2, 3], "s": ["a", "b", None]}),
        np.random.default_rng(5),
    ]
"""


def test_digests_are_the_same_in_other_processes_whatever_their_hash_seed() -> None:
    code = textwrap.dedent(VALUES) + textwrap.dedent("""
        import json
        from pytest_crystallize.core.cache.digests import digest_of
        print(json.dumps([digest_of(v, "v") for v in values]))
    """)
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout)
        for seed in ("1", "2")
    ]
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(VALUES), namespace)
    here = [_d(v) for v in namespace["values"]]
    assert runs[0] == runs[1] == here
    assert len(set(here)) == len(here)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([1, 2], (1, 2)),
        ([1, 2], [12]),
        ("12", [1, 2]),
        (1, 1.0),
        (1, True),
        (0.0, -0.0),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # insertion order can change what a step does
        (np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)),
        (np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int32)),
        (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [1.0, 2.0]})),
        (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [1, 2]}, index=[5, 6])),
        (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"y": [1, 2]})),
        (pd.Series([1, 2], name="a"), pd.Series([1, 2], name="b")),
        (pd.Series(["1", 1], dtype=object), pd.Series([1, "1"], dtype=object)),
        (pa.table({"x": [1, 2]}), pa.table({"x": [1, 3]})),
        (np.random.default_rng(1), np.random.default_rng(2)),
    ],
)
def test_different_content_gives_different_digests(first: Any, second: Any) -> None:
    assert _d(first) != _d(second)


def test_equal_content_gives_equal_digests_whatever_the_object_or_layout() -> None:
    base = np.arange(20.0).reshape(4, 5)
    assert _d(base[:, ::2]) == _d(np.ascontiguousarray(base[:, ::2]))
    frame = pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", "c"]})
    assert _d(frame) == _d(frame.copy(deep=True))
    assert _d(pa.concat_tables([pa.table({"x": [1]}), pa.table({"x": [2]})])) == _d(pa.table({"x": [1, 2]}))
    assert _d({1, 2, 3}) == _d({3, 2, 1})


@dataclasses.dataclass(frozen=True)
class Config:
    lr: float
    layers: tuple[int, ...]


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Described:
    def __init__(self, version: str) -> None:
        self.version = version

    def __crystallize_digest__(self) -> str:
        return self.version


def test_dataclasses_enums_and_objects_that_describe_themselves() -> None:
    assert _d(Config(0.1, (2, 3))) == _d(Config(0.1, (2, 3)))
    assert _d(Config(0.1, (2, 3))) != _d(Config(0.1, (2, 4)))
    assert _d(Color.RED) != _d(Color.BLUE)
    assert _d(Color.RED) != _d(1)
    assert _d(Described("v1")) == _d(Described("v1")) != _d(Described("v2"))


def _scale(factor: float) -> Any:
    return lambda x: x * factor


def test_functions_are_digested_by_code_closure_and_defaults() -> None:
    assert _d(_scale(2.0)) == _d(_scale(2.0))
    assert _d(_scale(2.0)) != _d(_scale(3.0))
    assert _d(functools.partial(round, ndigits=2)) != _d(functools.partial(round, ndigits=3))


def test_a_value_without_a_digest_is_an_error_naming_where_it_is() -> None:
    with pytest.raises(UndigestableError) as caught:
        digest_of({"model": [1, object()]}, "its data")
    assert caught.value.path == "its data['model'][1]"
    assert caught.value.type_name == "builtins.object"
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(UndigestableError, match="contains itself"):
        digest_of(loop, "its data")


HELPER_SOURCE = """
LIMIT = {limit}

def helper(x):
    return min(x, LIMIT)

def step(x):
    return helper(x) + 1
"""


def test_a_code_fingerprint_follows_helpers_and_constants_in_the_users_code(tmp_path: Any) -> None:
    def load(limit: int, name: str) -> Any:
        module = tmp_path / f"{name}.py"
        module.write_text(HELPER_SOURCE.format(limit=limit))
        namespace: dict[str, Any] = {"__name__": "same_module"}
        exec(compile(module.read_text(), "<step>", "exec"), namespace)
        return namespace["step"]

    assert code_fingerprint(load(3, "a")) == code_fingerprint(load(3, "b"))
    assert code_fingerprint(load(3, "a")) != code_fingerprint(load(4, "c"))
    # A library function is named, not read: numpy's source is not part of the fingerprint.
    assert code_fingerprint(np.mean) == code_fingerprint(np.mean)
