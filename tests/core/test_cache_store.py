"""The cache on disk: planted and foreign pickles refused unloaded, atomic entries, eviction, the secret."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_crystallize import CacheError, CachePlugin, FrozenContext, pipeline_step, run_experiment, standalone_context
from pytest_crystallize.core.cache.entries import pack_entry, unpack_entry
from pytest_crystallize.core.cache.secret import LocalSecret, load_secret
from pytest_crystallize.core.cache.store import StepCacheStore

CALLS: list[int] = []


@pytest.fixture(autouse=True)
def secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / "cache-secret"
    monkeypatch.setenv("CRYSTALLIZE_CACHE_SECRET", str(path))
    return path


class Model:
    def __init__(self, coef: float) -> None:
        self.coef = coef


@pipeline_step(cache=True)
def train(data: float, ctx: FrozenContext) -> Model:
    CALLS.append(1)
    ctx.metrics.add("coef", data * 2)
    return Model(data * 2)


def _trains(ctx: FrozenContext) -> None:
    ctx.metrics.add("out", train(1.5, ctx).coef)


class Planted:
    """Unpickling it creates the file it names: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _rewrite(entry: Path, pickle_part: bytes, signature: str | None = None) -> None:
    manifest, parts = unpack_entry(entry.read_bytes())
    [name] = [n for n in parts if n.endswith(".pickle")]
    parts[name] = pickle_part
    if signature is not None:
        manifest["signatures"][name] = signature
    entry.write_bytes(pack_entry(manifest, parts))


def _signed_elsewhere(entry: Path, blob: bytes) -> str:
    """The signature another machine (another secret) would give ``blob`` in ``entry``."""
    import hashlib
    import hmac

    manifest, parts = unpack_entry(entry.read_bytes())
    key = manifest["key"]
    [name] = [n for n in parts if n.endswith(".pickle")]
    return hmac.new(b"x" * 32, key.encode() + b"\0" + name.encode() + b"\0" + blob, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("forged", ["unsigned", "signed with another secret"])
def test_a_planted_pickle_is_refused_without_being_loaded_and_the_step_runs_again(tmp_path: Path, forged: str) -> None:
    import pickle

    plugin = CachePlugin(tmp_path / "cache")
    CALLS.clear()
    cold = run_experiment(_trains, replicates=2, plugins=[plugin])
    assert len(CALLS) == 1
    [entry] = list((tmp_path / "cache").rglob("*.entry"))
    marker = tmp_path / "pwned"
    blob = pickle.dumps(Planted(marker))
    _rewrite(entry, blob, _signed_elsewhere(entry, blob) if forged != "unsigned" else "0" * 64)

    fresh = CachePlugin(tmp_path / "cache")
    warm = run_experiment(_trains, replicates=2, plugins=[fresh])
    assert not marker.exists()
    assert fresh.store.counts.refused == 1
    assert len(CALLS) == 2  # computed again, and the entry written anew with a valid signature
    assert warm.to_dataframe().equals(cold.to_dataframe())
    again = CachePlugin(tmp_path / "cache")
    run_experiment(_trains, replicates=2, plugins=[again])
    assert (len(CALLS), again.store.counts.hits, again.store.counts.refused) == (2, 2, 0)


def test_an_entry_renamed_to_another_key_or_damaged_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    store = StepCacheStore(tmp_path, 10**6, LocalSecret())
    ctx = standalone_context()
    store.store("step", "a" * 40, {}, {"output": 1}, {})
    store.store("step", "b" * 40, {}, {"output": 2}, {})
    [first] = list((tmp_path / "steps" / "step" / ("a" * 40)).glob("*.entry"))
    [second] = list((tmp_path / "steps" / "step" / ("b" * 40)).glob("*.entry"))
    second.write_bytes(first.read_bytes())  # a file carrying another key's entry
    assert store.lookup("step", "b" * 40, ctx) is None
    first.write_bytes(first.read_bytes()[:40])  # cut short
    assert store.lookup("step", "a" * 40, ctx) is None
    assert store.counts.refused == 2
    store.store("step", "a" * 40, {}, {"output": 1}, {})
    hit = store.lookup("step", "a" * 40, ctx)
    assert hit is not None
    assert hit.manifest["output"] == 1


WRITER = """
    import sys, time
    import numpy as np
    from pathlib import Path
    from pytest_crystallize import standalone_context
    from pytest_crystallize.core.cache.codec import decode, encode
    from pytest_crystallize.core.cache.secret import LocalSecret
    from pytest_crystallize.core.cache.store import StepCacheStore

    root, seed = Path(sys.argv[1]), int(sys.argv[2])
    store = StepCacheStore(root, 10**9, LocalSecret())
    ctx = standalone_context()
    seen = bad = 0
    deadline = time.monotonic() + 3.0
    rounds = 0
    while time.monotonic() < deadline or rounds < 20:
        rounds += 1
        for key in range(6):
            call = f"{key:040d}"
            hit = store.lookup("s", call, ctx)
            if hit is not None:
                seen += 1
                value = decode(hit.manifest["output"], hit.parts)
                bad += not (value.shape == (50_000,) and (value == key).all())
            parts = {}
            output = encode(np.full(50_000, key, dtype=np.int64), parts)
            store.store("s", call, {}, {"output": output}, parts)
    print(seen, bad)
"""


def test_concurrent_writers_and_readers_in_processes_see_whole_entries_only(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    workers = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(n)], stdout=subprocess.PIPE,
                         text=True)
        for n in range(4)
    ]
    outputs = [worker.communicate(timeout=120)[0].split() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    seen = sum(int(out[0]) for out in outputs)
    bad = sum(int(out[1]) for out in outputs)
    assert seen > 0  # readers did meet entries others were rewriting meanwhile
    assert bad == 0
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert len(list((tmp_path / "cache").rglob("*.entry"))) == 6


def test_past_the_size_limit_the_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    ctx = standalone_context()
    parts = {"p0.bin": bytes(10_000)}
    store = StepCacheStore(tmp_path, 10**9, LocalSecret())
    for key in range(5):
        store.store("s", f"{key:040d}", {}, {"output": {"$": "bytes", "p": "p0.bin"}}, parts)
    entries = sorted((tmp_path / "steps").rglob("*.entry"), key=lambda p: p.parent.name)
    size = entries[0].stat().st_size
    now = time.time()
    for age, entry in enumerate(reversed(entries)):  # entry 0 oldest ... entry 4 newest
        for path in entry.parent.iterdir():  # its read set too: only old call directories are tidied away
            os.utime(path, (now - 100 * (age + 1), now - 100 * (age + 1)))
    assert store.lookup("s", f"{0:040d}", ctx) is not None  # used now: no longer the oldest

    limited = StepCacheStore(tmp_path, 4 * size, LocalSecret())
    limited.store("s", f"{5:040d}", {}, {"output": {"$": "bytes", "p": "p0.bin"}}, parts)
    kept = {p.parent.name for p in (tmp_path / "steps").rglob("*.entry")}
    # 6 entries over a limit of 4: pruned to 80% of it, 3 entries, the least recently used out.
    assert kept == {f"{k:040d}" for k in (0, 4, 5)}
    assert limited.info().size <= 4 * size
    assert not (tmp_path / "steps" / "s" / f"{1:040d}").exists()  # emptied call directories go too


def test_the_secret_is_private_to_its_user_and_refused_otherwise(secret: Path) -> None:
    first = load_secret()
    assert len(first) == 32
    assert load_secret() == first
    if os.name == "posix":
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        secret.chmod(0o644)
        with pytest.raises(CacheError, match="chmod 600"):
            load_secret()
        secret.chmod(0o600)
    secret.write_bytes(b"short")
    with pytest.raises(CacheError, match="holds 5 bytes"):
        load_secret()


def test_an_entry_with_a_pickle_is_only_written_with_a_secret(tmp_path: Path) -> None:
    store = StepCacheStore(tmp_path, 10**6, lambda: None)
    with pytest.raises(CacheError, match="no cache secret"):
        store.store("s", "c" * 40, {}, {"output": {"$": "pickle", "p": "p0.pickle"}}, {"p0.pickle": b"x"})
    assert list(tmp_path.rglob("*.entry")) == []


def test_values_come_back_in_their_own_types(tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    from pytest_crystallize.core.cache.codec import decode, encode

    values = [
        None, True, 7, 2.5, float("nan"), -0.0, 1 + 2j, "text", b"\x00raw", [1, (2, 3)], {"a": {1, 2}, (1, 2): None},
        np.arange(6.0).reshape(2, 3), np.float32(2.5), np.datetime64("2024-01-02"),
        pd.DataFrame({"x": [1, 2], "s": ["a", None], "c": pd.Categorical(["u", "v"])}, index=pd.Index([3, 4], name="i")),
        pd.Series([1.5, 2.5], name="s", index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])),
        pa.table({"x": [1, 2]}), Model(3.0), pd.DataFrame({0: [1]}),
    ]
    for value in values:
        parts: dict[str, bytes] = {}
        node = json.loads(json.dumps(encode(value, parts)))
        back = decode(node, parts)
        assert type(back) is type(value)
        if isinstance(value, (pd.DataFrame, pd.Series)):
            assert back.equals(value)
            if isinstance(value, pd.DataFrame):
                assert list(back.dtypes) == list(value.dtypes)
            else:
                assert back.dtype == value.dtype
            assert back.index.equals(value.index)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(back, value)
            assert back.dtype == value.dtype
        elif isinstance(value, Model):
            assert back.coef == value.coef
        else:
            assert repr(back) == repr(value)
        # Only what no data format holds goes through pickle (and is signed): here a custom class, and a
        # frame whose integer column label Arrow would turn into text.
        pickled = any(name.endswith(".pickle") for name in parts)
        assert pickled == (isinstance(value, Model) or (isinstance(value, pd.DataFrame) and 0 in value.columns))


def test_clearing_removes_what_the_cache_wrote_and_nothing_else(tmp_path: Path) -> None:
    # A cache directory that is a link to a directory of other files (or was pointed at one) loses none of them.
    target = tmp_path / "elsewhere"
    (target / "steps" / "notes").mkdir(parents=True)
    (target / "steps" / "notes" / "precious.txt").write_text("keep me")
    (target / "keep.txt").write_text("keep me too")
    link = tmp_path / "store" / "cache"
    link.parent.mkdir()
    link.symlink_to(target, target_is_directory=True)
    CALLS.clear()
    run_experiment(_trains, replicates=2, plugins=[CachePlugin(link)])
    assert CALLS == [1]
    store = StepCacheStore(link, 1 << 30, LocalSecret())
    assert store.info().entries == 1
    assert store.clear() == 1
    assert store.info().entries == 0
    assert (target / "steps" / "notes" / "precious.txt").read_text() == "keep me"
    assert (target / "keep.txt").read_text() == "keep me too"
    assert sorted(p.name for p in (target / "steps").iterdir()) == ["notes"]
    run_experiment(_trains, replicates=2, plugins=[CachePlugin(link)])
    assert CALLS == [1, 1]  # cleared: computed again
