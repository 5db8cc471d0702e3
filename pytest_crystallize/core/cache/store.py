"""The step cache on disk: entries by step and call key, their read sets, a size limit, eviction.

Layout, under the store (``.crystallize/cache/`` by default)::

    cache/CACHEDIR.TAG                               tells backup tools to skip the directory
    cache/steps/<step>-<hash>/<call key>/reads-<id>.json   a read set: what a call of this key read
    cache/steps/<step>-<hash>/<call key>/<entry key>.entry one entry (see core/cache/entries.py)

Every file is written under a temporary name and renamed into place, so any
number of processes (worker pools, pytest-xdist workers, parallel CI jobs
on a shared disk) read and write one cache without a lock: a reader sees a
whole file or none, and two writers of one entry write the same content.

A hit sets the entry's modification time: it is the time of last use. When
the entries outgrow the size limit, the least recently used are removed
until the cache is back under 80% of it (:meth:`StepCacheStore.prune`).
Each process counts what it writes and prunes when its count passes the
limit; the count is refreshed from the disk at every prune.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.cache.entries import TEMPORARY_PREFIX, read_entry, write_entry, write_file
from pytest_crystallize.core.cache.keys import Read, entry_key, read_digest, read_value, reads_id
from pytest_crystallize.errors import CacheError, UndigestableError

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext

__all__ = ["CacheInfo", "Hit", "PruneReport", "StepCacheStore"]

STEPS_DIR: Final = "steps"
ENTRY_SUFFIX: Final = ".entry"
READS_PREFIX: Final = "reads-"
#: Pruning brings the cache down to this share of its limit, so it does not prune at every write.
PRUNE_TO: Final = 0.8
#: Temporary files older than this are left over from a crash: pruning removes them.
STALE_SECONDS: Final = 3600.0
_TAG: Final = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This directory is the step cache of pytest-crystallize; it can be deleted at any time.\n"
)
@dataclass(frozen=True, slots=True)
class Hit:
    """An entry found for a call: its manifest and parts, and the values of the reads it matched."""

    manifest: dict[str, Any]
    parts: dict[str, bytes]
    reads: dict[Read, Any]


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune removed and what is left."""

    removed: int
    freed: int
    entries: int
    size: int


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """The cache's entries and size, in total and by step."""

    root: Path
    entries: int
    size: int
    steps: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class _Counts:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    refused: int = 0


class StepCacheStore:
    """One cache directory. Holds a running count of the bytes written; safe to pickle to workers."""

    def __init__(self, root: Path, max_bytes: int, secret: Callable[[], bytes | None]) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._secret = secret
        self._used: int | None = None
        #: This process's hits, misses, entries stored and entries refused (planted, foreign, unreadable).
        self.counts = _Counts()

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "max_bytes": self.max_bytes, "secret": self._secret}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["max_bytes"], state["secret"])  # type: ignore[misc]  # fresh counts

    def _call_dir(self, folder: str, call: str) -> Path:
        return self.root / STEPS_DIR / folder / call

    def lookup(self, folder: str, call: str, ctx: FrozenContext) -> Hit | None:
        """The entry of call key ``call`` whose read set has, in ``ctx``, the values it had; None if none."""
        directory = self._call_dir(folder, call)
        try:
            names = sorted(os.listdir(directory))
        except OSError:  # no entry yet (or no cache at all)
            self.counts.misses += 1
            return None
        for name in names:
            if name.startswith(READS_PREFIX) and name.endswith(".json"):
                hit = self._match(directory, name, call, ctx)
                if hit is not None:
                    self.counts.hits += 1
                    return hit
        self.counts.misses += 1
        return None

    def _match(self, directory: Path, name: str, call: str, ctx: FrozenContext) -> Hit | None:
        reads = _read_set(directory / name)
        if reads is None:
            return None
        try:
            values = {read: read_value(ctx, read) for read in reads}
            digests = [read_digest(read, values[read]) for read in reads]
        except UndigestableError:  # the stored call read a digestable value here
            return None
        key = entry_key(call, name[len(READS_PREFIX):-len(".json")], digests)
        path = directory / f"{key}{ENTRY_SUFFIX}"
        try:
            manifest, parts = read_entry(path, key, self._secret)
        except OSError:
            return None
        except CacheError:  # planted, foreign or damaged: computed again and overwritten
            self.counts.refused += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # the time of last use, for eviction
        return Hit(manifest, parts, values)

    def store(
        self, folder: str, call: str, reads: dict[Read, str], manifest: dict[str, Any], parts: dict[str, bytes]
    ) -> None:
        """Write the entry of call key ``call`` whose reads had these digests; prune if over the limit.

        Raises CacheError when it needs a secret there is none of, OSError when the disk refuses.
        """
        directory = self._call_dir(folder, call)
        directory.mkdir(parents=True, exist_ok=True)
        self._tag()
        ordered = sorted(reads)
        read_set = reads_id(ordered)
        reads_file = directory / f"{READS_PREFIX}{read_set}.json"
        if not reads_file.exists():
            text = json.dumps([[read.kind, read.key] for read in ordered]).encode()
            write_file(reads_file, lambda file: file.write(text))
        key = entry_key(call, read_set, [reads[read] for read in ordered])
        secret = self._secret() if any(name.endswith(".pickle") for name in parts) else None
        size = write_entry(directory / f"{key}{ENTRY_SUFFIX}", key, manifest, parts, secret)
        self.counts.stored += 1
        if self._used is None:
            self._used = sum(size for _, _, size in self._entries())
        else:
            self._used += size
        if self._used > self.max_bytes:
            self.prune(self.max_bytes)

    def _tag(self) -> None:
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            with contextlib.suppress(OSError):
                write_file(tag, lambda file: file.write(_TAG.encode()))

    def _entries(self) -> Iterator[tuple[Path, float, int]]:
        """Every entry file with its time of last use and size (temporary files left by a crash: removed)."""
        steps = self.root / STEPS_DIR
        now = time.time()
        for directory, _, files in os.walk(steps):
            for name in files:
                path = Path(directory) / name
                try:
                    status = path.stat()
                except OSError:
                    continue
                if name.endswith(ENTRY_SUFFIX):
                    yield path, status.st_mtime, status.st_size
                elif name.startswith(TEMPORARY_PREFIX) and now - status.st_mtime > STALE_SECONDS:
                    path.unlink(missing_ok=True)

    def prune(self, max_bytes: int, *, fill: float = PRUNE_TO) -> PruneReport:
        """Remove the least recently used entries until they take at most ``fill * max_bytes``."""
        entries = sorted(self._entries(), key=lambda entry: entry[1])
        total = sum(size for _, _, size in entries)
        target = max_bytes * fill if total > max_bytes else max_bytes
        removed = freed = 0
        for path, _, size in entries:
            if total - freed <= target:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
                freed += size
        self._remove_empty_calls()
        self._used = total - freed
        return PruneReport(removed=removed, freed=freed, entries=len(entries) - removed, size=total - freed)

    def _remove_empty_calls(self) -> None:
        """Remove call directories left with read sets only (not written to in the last minute)."""
        steps = self.root / STEPS_DIR
        now = time.time()
        for step in _subdirectories(steps):
            for call in _subdirectories(step):
                with contextlib.suppress(OSError):
                    files = list(call.iterdir())
                    if any(f.name.endswith(ENTRY_SUFFIX) for f in files):
                        continue
                    if all(now - f.stat().st_mtime > 60 for f in files):
                        for file in files:  # only what the cache wrote; anything else keeps the directory
                            if file.name.startswith((READS_PREFIX, TEMPORARY_PREFIX)):
                                file.unlink()
                        call.rmdir()
            with contextlib.suppress(OSError):
                step.rmdir()  # only when empty

    def clear(self) -> int:
        """Remove every entry; return how many there were.

        Only what the cache writes goes (entries, read sets, temporary files),
        then the directories left empty: a cache directory that is a link to,
        or was pointed at, a directory holding other files never loses them.
        """
        count = 0
        for directory, _, files in os.walk(self.root / STEPS_DIR, topdown=False):
            for name in files:
                ours = name.endswith(ENTRY_SUFFIX) or name.startswith((READS_PREFIX, TEMPORARY_PREFIX))
                if ours:
                    with contextlib.suppress(OSError):
                        (Path(directory) / name).unlink()
                        count += name.endswith(ENTRY_SUFFIX)
            with contextlib.suppress(OSError):
                os.rmdir(directory)  # only when empty
        self._used = None
        return count

    def info(self) -> CacheInfo:
        """The entries and their size, in total and by step directory."""
        steps: dict[str, tuple[int, int]] = {}
        for path, _, size in self._entries():
            folder = path.parent.parent.name
            count, total = steps.get(folder, (0, 0))
            steps[folder] = (count + 1, total + size)
        return CacheInfo(
            root=self.root, entries=sum(c for c, _ in steps.values()), size=sum(s for _, s in steps.values()),
            steps=dict(sorted(steps.items())),
        )


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _read_set(path: Path) -> tuple[Read, ...] | None:
    """The reads listed in a read-set file, or None if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, list):
        return None
    reads = tuple(Read.from_json(item) for item in data)
    return None if any(read is None for read in reads) else reads  # type: ignore[return-value]  # checked
