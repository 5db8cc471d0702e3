"""The journal: an experiment's finished replicates, on disk as they complete.

A run that stops midway (Ctrl-C, a crash, a killed CI job, pytest-timeout)
loses no finished replicate: each batch of tasks appends *parts* to the
experiment's journal while it runs, and a later run with ``resume`` runs only
the tasks the journal lacks. Every task's values depend only on its
condition and replicate index, so the resumed result is the uninterrupted
one, value for value. Layout::

    <root>/journal/<experiment key>/part-<pid>-<ns>-<hex>.npz

A part is a numpy ``.npz`` of plain arrays, read with ``allow_pickle=False``
(nothing in it can run code when read; numpy is loaded anyway, pyarrow need
not be), holding the values of the tasks it covers; its JSON header holds
those tasks, their errors, the distinct tag texts (values hold codes into
them), the baseline's data digests (for the shared-data check) and the
*fingerprint* of the experiment that wrote it (its definition, seed and
code). A part is written to a temporary name and
renamed, so a reader sees whole parts only, and any number of processes
(worker pools, xdist workers) append to one journal without a lock.

A part written for another fingerprint, or one that cannot be read, is
discarded and said so (:attr:`JournalContents.discarded`), never merged.
The journal never follows a symbolic link and deletes only files named the
way it names them.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import re
import secrets
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.sink import MetricSink
from pytest_crystallize.core.store.definitions import definition_of
from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment

__all__ = ["FLUSH_INTERVAL", "Journal", "JournalContents", "JournalWriter", "journal_fingerprint", "journal_key"]

#: Seconds between two parts written by one batch at most (a crash loses at most this much work).
FLUSH_INTERVAL: Final = 0.5
JOURNAL_DIR: Final = "journal"
_PART: Final = re.compile(r"part-\d+-\d+-[0-9a-f]{8}\.npz")
_FORMAT: Final = 2  # 2: tags as codes into the part's tag texts
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.=-]+")


def journal_key(identity: str) -> str:
    """A directory name for the experiment ``identity`` (a pytest node id): readable, unique, short."""
    readable = _UNSAFE.sub("_", identity.rsplit("::", 1)[-1])[:60].strip("._") or "experiment"
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def _code_digest(function: Any) -> str:
    """The source of ``function`` and of its whole module file (steps defined beside it change it too)."""
    function = inspect.unwrap(function)
    parts: list[bytes] = []
    try:
        parts.append(inspect.getsource(function).encode())
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        parts.append(code.co_code if code is not None else repr(function).encode())
    try:
        source_file = inspect.getsourcefile(function)
    except TypeError:
        source_file = None
    if source_file:
        with contextlib.suppress(OSError):
            parts.append(Path(source_file).read_bytes())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def journal_fingerprint(experiment: Experiment) -> str:
    """What the journal's values depend on: definition, seed, conditions' inputs, and the code run.

    Code is the experiment function's module file and each datasource's;
    steps imported from other modules are not covered (the documentation
    says to run without resume after changing those).
    """
    sources = sorted(
        {_code_digest(source.function) for c in experiment.conditions() for _, source in c.datasources}
    )
    description = {
        "definition": definition_of(experiment), "seed": experiment.seed,
        "code": _code_digest(experiment.function), "datasources": sources,
    }
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class JournalContents:
    """What a journal held for one fingerprint: finished tasks with their values and errors."""

    tasks: set[ReplicateTask] = field(default_factory=set)
    condition: list[int] = field(default_factory=list)
    replicate: list[int] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    tags: list[str | None] = field(default_factory=list)
    #: ``(task, error)`` of the tasks that ended in an error.
    errors: list[tuple[ReplicateTask, ReplicateError]] = field(default_factory=list)
    #: ``(replicate, parameter, digest)`` of the baseline's datasource outputs (the shared-data check).
    digests: list[tuple[int, str, str]] = field(default_factory=list)
    #: Why parts were not used (another fingerprint, unreadable), one line per reason.
    discarded: list[str] = field(default_factory=list)

    def batch_for(self, tasks: Sequence[ReplicateTask]) -> tuple[ReplicateBatch, list[ReplicateTask]]:
        """The journal's batch of those ``tasks`` it holds, and the tasks it lacks (in order)."""
        wanted = {task for task in tasks if task in self.tasks}
        missing = [task for task in tasks if task not in wanted]
        batch = ReplicateBatch(task_count=len(wanted))
        sink = batch.sink
        for i, task in enumerate(zip(self.condition, self.replicate, strict=True)):
            if task in wanted:
                sink.append(task[0], task[1], self.metric[i], self.value[i], self.tags[i])
        batch.errors = [error for task, error in self.errors if task in wanted]
        batch.digests = [d for d in self.digests if (0, d[0]) in wanted]
        return batch, missing


@dataclass(frozen=True, slots=True)
class Journal:
    """The journal of one experiment: a directory of parts. Picklable, so worker processes append to it."""

    directory: Path
    fingerprint: str
    #: Condition names in code order (errors name their condition).
    conditions: tuple[str, ...] = ()

    @classmethod
    def for_experiment(cls, root: Path, identity: str, experiment: Experiment) -> Journal:
        """The journal of ``experiment`` (known as ``identity``) under the store ``root``."""
        return cls(root / JOURNAL_DIR / journal_key(identity), journal_fingerprint(experiment),
                   tuple(experiment.condition_names))

    def writer(self, tasks: Sequence[ReplicateTask], batch: ReplicateBatch | None = None) -> JournalWriter:
        """A writer of the parts of one batch running ``tasks`` in order (after what ``batch`` holds already)."""
        return JournalWriter(self, tasks, batch)

    def _checked_directory(self, *, create: bool) -> Path | None:
        """The journal's directory (made when ``create``), or None when it does not exist."""
        for path in (self.directory.parent, self.directory):
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                msg = (f"journal: {path} is a symbolic link or a file, not a directory the journal wrote; "
                       f"remove it (the journal never writes or deletes through a link)")
                raise ResultsError(msg)
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory if self.directory.is_dir() else None

    def prepare(self) -> None:
        """Make the journal's directory; raises OSError or ResultsError when the store cannot hold it."""
        self._checked_directory(create=True)

    def _parts(self) -> list[Path]:
        directory = self._checked_directory(create=False)
        if directory is None:
            return []
        return sorted(
            entry for entry in directory.iterdir()
            if _PART.fullmatch(entry.name) and not entry.is_symlink() and entry.is_file()
        )

    def write(
        self, tasks: Sequence[ReplicateTask], sink: MetricSink, start: int, errors: Sequence[ReplicateError],
        digests: Sequence[tuple[int, str, str]] = (),
    ) -> None:
        """Append a part: ``tasks``, the sink's values from index ``start`` on, ``errors`` and data ``digests``."""
        import numpy as np

        directory = self._checked_directory(create=True)
        assert directory is not None
        columns = sink.columns(start)
        header = {
            "format": _FORMAT, "fingerprint": self.fingerprint, "tasks": [list(task) for task in tasks],
            "errors": [e.to_dict() for e in errors], "metrics": list(columns.metric_names),
            "tag_texts": list(columns.tag_texts), "digests": [list(d) for d in digests],
        }
        name = f"part-{os.getpid()}-{time.time_ns()}-{secrets.token_hex(4)}.npz"
        temporary = directory / f".{name}.tmp"
        with temporary.open("wb") as out:
            np.savez(
                out, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                condition=columns.condition, replicate=columns.replicate, metric=columns.metric,
                value=columns.value, tag=columns.tag,
            )
        os.replace(temporary, directory / name)

    def load(self) -> JournalContents:
        """Every finished task of this fingerprint; parts of other fingerprints are deleted and said so."""
        contents = JournalContents()
        stale = 0
        for part in self._parts():
            try:
                header, columns = _read_part(part)
                if header.get("fingerprint") != self.fingerprint:
                    stale += len(header.get("tasks", ()))
                    part.unlink(missing_ok=True)
                    continue
                self._merge(contents, header, columns)
            except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as exc:
                contents.discarded.append(f"{part.name} could not be read ({exc}); its replicates run again")
                part.unlink(missing_ok=True)
        if stale:
            contents.discarded.append(
                f"{stale} journaled replicate tasks were written by a different definition or code "
                f"of this experiment and were discarded"
            )
        return contents

    def _merge(self, contents: JournalContents, header: dict[str, Any], columns: dict[str, list[Any]]) -> None:
        """Add a part's tasks the contents lack; raises (changing nothing) when the part is malformed."""
        tasks = {(int(c), int(r)) for c, r in header["tasks"]}
        new = tasks - contents.tasks  # a task journaled twice (never by design) counts once
        rows = [
            i for i, task in enumerate(zip(columns["condition"], columns["replicate"], strict=True)) if task in new
        ]
        errors = []
        for data in header["errors"]:
            error = ReplicateError.from_dict(data)
            task = (self.conditions.index(error.condition), error.replicate)
            if task in new:
                errors.append((task, error))
        digests = [(int(r), str(name), str(digest)) for r, name, digest in header.get("digests", ())]
        contents.tasks |= new
        for column in ("condition", "replicate", "metric", "value", "tags"):
            getattr(contents, column).extend(columns[column][i] for i in rows)
        contents.errors += errors
        contents.digests += [d for d in digests if (0, d[0]) in new]

    def clear(self) -> None:
        """Delete the journal's parts (and its directory, when nothing else is in it)."""
        for part in self._parts():
            part.unlink(missing_ok=True)
        directory = self._checked_directory(create=False)
        if directory is not None:
            for leftover in directory.glob(".part-*.npz.tmp"):
                if leftover.is_file() and not leftover.is_symlink():
                    leftover.unlink(missing_ok=True)
            # The store root too, when the journal was all it held: a run that saves nothing leaves nothing.
            for path in (directory, directory.parent, directory.parent.parent):
                try:
                    path.rmdir()
                except OSError:  # not empty (another journal, saved runs, the user's files) or a link
                    break


def _read_part(path: Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """A part's header and columns (metric names decoded); raises ValueError and kin when malformed."""
    import numpy as np

    # numpy leaks the file it opened when a corrupt file makes it raise: own the file.
    with path.open("rb") as file, np.load(file, allow_pickle=False) as data:  # never unpickles
        header = json.loads(data["header"].tobytes())
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            msg = "not a part of this version's journal"
            raise ValueError(msg)
        names, texts = header["metrics"], [*header["tag_texts"], None]  # tag code -1: no tags
        columns = {
            "condition": data["condition"].tolist(), "replicate": data["replicate"].tolist(),
            "metric": [names[code] for code in data["metric"].tolist()], "value": data["value"].tolist(),
            "tags": [texts[code] for code in data["tag"].tolist()],
        }
    if len({len(column) for column in columns.values()}) != 1:
        msg = "its columns differ in length"
        raise ValueError(msg)
    return header, columns


class JournalWriter:
    """Writes the parts of one batch: what finished, at most every :data:`FLUSH_INTERVAL` seconds."""

    __slots__ = ("_digests", "_errors", "_journal", "_last", "_tasks", "_values", "_written")

    def __init__(self, journal: Journal, tasks: Sequence[ReplicateTask], batch: ReplicateBatch | None = None) -> None:
        self._journal: Journal | None = journal
        self._tasks = tasks
        self._written = self._values = self._errors = self._digests = 0
        if batch is not None:  # a batch continued with ``tasks``: what it held was journaled with its own tasks
            self._values, self._errors, self._digests = len(batch.sink), len(batch.errors), len(batch.digests)
        self._last = time.perf_counter()

    def finished(self, batch: ReplicateBatch, done: int) -> None:
        """Note that the first ``done`` tasks finished; write a part when the interval has passed."""
        now = time.perf_counter()
        if now - self._last >= FLUSH_INTERVAL:
            self._last = now
            self.flush(batch, done)

    def flush(self, batch: ReplicateBatch, done: int) -> None:
        """Write a part of the tasks finished since the last part, if any.

        A part that cannot be written (the disk is full, the store was
        removed) ends this batch's journaling, never the run.
        """
        if done <= self._written or self._journal is None:
            return
        try:
            self._journal.write(self._tasks[self._written:done], batch.sink, self._values,
                                batch.errors[self._errors:], batch.digests[self._digests:])
        except (OSError, ResultsError):
            self._journal = None
            return
        self._written, self._values, self._errors = done, len(batch.sink), len(batch.errors)
        self._digests = len(batch.digests)

