"""Saved runs: the results of a test session, kept for later comparison.

A store keeps *runs*. A run is a JSON record (id, name, time, git commit,
machine, versions, options, and per experiment its seeds, definition
fingerprint and gate) plus one Parquet file of values per experiment.
:class:`DirectoryStore` keeps them on disk::

    <root>/runs/<run id>/run.json          the record, checksums of the files
    <root>/runs/<run id>/0000.parquet      one experiment's values and verdicts
    <root>/staging/<run id>.<token>/       a save in progress (never read)

A save writes everything into a private staging directory (each file
fsynced), then renames that directory into ``runs/`` in one atomic step: a
reader sees a whole run or none, whatever crashes or how many processes save
at once (ids combine time and randomness; there is no shared index file to
lock). Nothing is ever unpickled. A missing, corrupt or foreign file raises
:class:`~pytest_crystallize.errors.ResultsError` naming the file; listing
reports a corrupt run as a problem and still lists the others.
:class:`MemoryStore` is the same protocol in memory, for tests.

The store never follows a symbolic link out of itself: ``runs/`` or
``staging/`` being a link (or a file) is a ResultsError naming it, never a
write or a deletion elsewhere, and a link in ``runs/`` is reported, not read.
(The root itself may be a link: it is where the user keeps the store.)
Cleaning up ``staging/`` removes only directories named the way a save
names them (``<run id>.<8 hex digits>``) and abandoned for a day.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from pytest_crystallize.core.nesting import MAX_DEPTH, deeper_than, load_strict_json
from pytest_crystallize.core.results import ExperimentResult
from pytest_crystallize.core.store.records import (
    RUN_ID,
    ExperimentRun,
    Listing,
    NewRun,
    RunRecord,
    SavedExperiment,
    UnreadableRun,
    check_run_name,
    new_run_id,
    parse_record,
    resolve,
)
from pytest_crystallize.errors import ResultsError

__all__ = ["DirectoryStore", "MemoryStore", "RunStore", "write_atomic"]

RECORD_FILE: Final = "run.json"
RUNS_DIR: Final = "runs"
STAGING_DIR: Final = "staging"
_STALE_STAGING_S: Final = 24 * 3600.0
#: Bytes read at a time to checksum a written file.
_HASH_BLOCK: Final = 1 << 20
#: The name of a save's staging directory, ``<run id>.<8 hex digits>``: cleanup removes nothing else.
_STAGING_NAME: Final = re.compile(rf"(?:{RUN_ID.pattern})\.[0-9a-f]{{8}}")


class RunStore(Protocol):
    """Where runs are saved. Implementations: :class:`DirectoryStore`, :class:`MemoryStore`."""

    def save(self, run: NewRun) -> RunRecord:
        """Save ``run`` under a new id and return its record."""
        ...

    def listing(self) -> Listing:
        """Every saved run, oldest first; unreadable runs become problems, never errors."""
        ...

    def find(self, reference: str) -> RunRecord:
        """The run ``reference`` names (see :func:`resolve`); raise ResultsError if none."""
        ...

    def result(self, record: RunRecord, nodeid: str) -> ExperimentResult:
        """Load one experiment's result of a saved run."""
        ...


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync elsewhere
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_and_hash(path: Path) -> str:
    """Flush ``path`` to disk and return its SHA-256, read a block at a time (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _make_record(run: NewRun, write: Callable[[str, str, ExperimentRun], str]) -> RunRecord:
    name = None if run.name is None else check_run_name(run.name)
    now = datetime.now(UTC)
    run_id = new_run_id(now)
    experiments = {}
    for index, entry in enumerate(run.experiments):
        file = f"{index:04d}.parquet"
        result = entry.result
        experiments[entry.nodeid] = SavedExperiment(
            nodeid=entry.nodeid, experiment=result.experiment, file=file, sha256=write(run_id, file, entry),
            fingerprint=entry.fingerprint, definition=dict(entry.definition),
            gate={k: dict(v) for k, v in entry.gate.items()}, master_seed=result.provenance.master_seed,
            replicates=result.provenance.replicates, passed=result.passed, values=len(result),
        )
    return RunRecord(
        id=run_id, name=name,
        created_at=now.isoformat(timespec="seconds"), git=run.git,
        machine=dict(run.machine), versions=dict(run.versions), options=dict(run.options),
        experiments=experiments,
    )


class DirectoryStore:
    """Runs in a directory (see the module docstring for the layout). Stateless between calls."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"

    @property
    def runs_dir(self) -> Path:
        """The directory holding one directory per saved run."""
        return self.root / RUNS_DIR

    def _own_directory(self, name: str) -> Path | None:
        """``root/name`` checked to be a real directory of the store, or None if it does not exist.

        Raises ResultsError naming the path if the root or it is not a
        directory, or it is a symbolic link (which would lead writes and
        cleanups out of the store), or it cannot be inspected.
        """
        path = self.root / name
        try:
            if self.root.exists() and not self.root.is_dir():
                raise ResultsError(_not_a_directory(self.root, "the store"))
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            msg = f"{path}: the store cannot use it ({exc})"
            raise ResultsError(msg) from None
        if stat.S_ISLNK(mode):
            msg = (f"{path}: is a symbolic link{_link_target(path)}; the store never follows a link out of itself "
                   f"(saves write to {name}/ and clean it up). Remove the link and let the store make {name}/ "
                   "itself; to keep saved runs elsewhere, point crystallize_storage or --crystallize-storage there")
            raise ResultsError(msg)
        if not stat.S_ISDIR(mode):
            raise ResultsError(_not_a_directory(path, f"the store's {name}/"))
        return path

    def _made_own_directory(self, name: str) -> Path:
        """``root/name`` as :meth:`_own_directory` checks it, made first if it does not exist."""
        path = self._own_directory(name)
        if path is None:
            self.root.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # a concurrent save made it: checked below
                (self.root / name).mkdir()
            path = self._own_directory(name)
        if path is None:
            msg = f"{self.root / name}: removed while a run was being saved"
            raise ResultsError(msg)
        return path

    def save(self, run: NewRun) -> RunRecord:
        """Write the run to staging, then rename it into ``runs/`` atomically.

        Raises:
            ResultsError: a bad run name; the store, ``runs/`` or ``staging/`` is not a
                directory or is a symbolic link.
            OSError: the store cannot be written.

        """
        runs_dir = self._made_own_directory(RUNS_DIR)
        staging_root = self._made_own_directory(STAGING_DIR)
        _remove_stale(staging_root)
        staging = staging_root / f"{new_run_id()}.{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            def write(_: str, file: str, entry: ExperimentRun) -> str:
                if entry.parquet is None:
                    entry.result.to_parquet(staging / file)
                else:  # the file a worker wrote and this process has read back: saved as it is, not encoded again
                    (staging / file).write_bytes(entry.parquet)
                return _sync_and_hash(staging / file)

            record = _make_record(run, write)
            data = record.to_dict()
            if deeper_than(data):
                msg = (f"run not saved to {self.root}: its definitions or options nest more than the "
                       f"{MAX_DEPTH} levels a saved run may have, so it could not be read back")
                raise ResultsError(msg)
            write_atomic(staging / RECORD_FILE, json.dumps(data, indent=2, allow_nan=False).encode())
            target = runs_dir / record.id
            os.rename(staging, target)  # atomic; fails rather than merge if the id exists
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_directory(runs_dir)
        return replace(record, location=str(target))

    def read_record(self, directory: Path) -> RunRecord:
        """Read the record of the run in ``directory``; ResultsError names what is wrong."""
        path = directory / RECORD_FILE
        try:
            data = load_strict_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            what = "not a saved run" if directory.is_dir() else "no such run directory"
            msg = f"{path}: missing ({what})"
            raise ResultsError(msg) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            msg = f"{path}: not a readable run record ({exc})"
            raise ResultsError(msg) from None
        record = parse_record(data, str(path))
        if directory.parent == self.runs_dir and record.id != directory.name:
            msg = f"{path}: the record's id {record.id!r} does not match its directory {directory.name!r}"
            raise ResultsError(msg)
        return replace(record, location=str(directory))

    def listing(self) -> Listing:
        """Every readable run, oldest first; unreadable ones as problem lines."""
        runs, unreadable = [], []
        runs_dir = self._own_directory(RUNS_DIR)
        try:
            directories = [] if runs_dir is None else sorted(runs_dir.iterdir())
        except OSError as exc:
            msg = f"{runs_dir}: the saved runs cannot be listed ({exc})"
            raise ResultsError(msg) from None
        for directory in directories:
            if directory.name.startswith("."):
                continue
            if directory.is_symlink():
                problem = (f"{directory}: is a symbolic link, not a run saved in this store (the store never "
                           "follows a link out of itself); move the run it points to into the store instead")
                unreadable.append(UnreadableRun(directory.name, problem))
                continue
            if not directory.is_dir():
                continue
            try:
                runs.append(self.read_record(directory))
            except ResultsError as exc:
                known, name = _name_hint(directory / RECORD_FILE)
                unreadable.append(UnreadableRun(directory.name, str(exc), name, known))
        runs.sort(key=lambda r: r.id)  # ids begin with the UTC time
        return Listing(tuple(runs), tuple(u.problem for u in unreadable), tuple(unreadable))

    def find(self, reference: str) -> RunRecord:
        """A run by reference, or by the path of its directory or ``run.json``."""
        path = Path(reference)
        if os.sep in reference or "/" in reference or path.name == RECORD_FILE:
            return self.read_record(path.parent if path.name == RECORD_FILE else path)
        return resolve(self.listing(), reference, str(self.root))

    def result(self, record: RunRecord, nodeid: str) -> ExperimentResult:
        """Load one experiment of ``record``, checking its file against the recorded checksum."""
        entry = _entry(record, nodeid)
        path = Path(record.location) / entry.file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            msg = f"{path}: missing (run {record.id} lists it for {nodeid!r})"
            raise ResultsError(msg) from None
        except OSError as exc:
            msg = f"{path}: cannot be read ({exc})"
            raise ResultsError(msg) from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            msg = f"{path}: corrupt (its SHA-256 checksum differs from the one run {record.id} recorded)"
            raise ResultsError(msg)
        return ExperimentResult.from_parquet(path)


def _not_a_directory(path: Path, what: str) -> str:
    return (f"{path}: is a file, not a directory, so it cannot be {what}; move it away, or point "
            "crystallize_storage or --crystallize-storage at another directory")


def _link_target(path: Path) -> str:
    try:
        return f" (to {os.readlink(path)!r})"
    except OSError:
        return ""


def _name_hint(path: Path) -> tuple[bool, str | None]:
    """``(True, name)`` when an unreadable record still shows its run's name, else ``(False, None)``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))  # lenient: only the name is wanted
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False, None
    name = data.get("name", False) if isinstance(data, dict) else False
    return (True, name) if name is None or isinstance(name, str) else (False, None)


def _entry(record: RunRecord, nodeid: str) -> SavedExperiment:
    entry = record.experiments.get(nodeid)
    if entry is None:
        msg = f"run {record.id} has no experiment {nodeid!r} (it has {len(record.experiments)})"
        raise ResultsError(msg)
    return entry


def _remove_stale(staging_root: Path) -> None:
    """Remove saves abandoned (by a killed process) more than a day ago; best effort.

    Only real directories named like a save's staging directory go; whatever
    else is there (a link above all) is left alone.
    """
    cutoff = time.time() - _STALE_STAGING_S
    with os.scandir(staging_root) as entries:
        for entry in entries:
            try:
                if (_STAGING_NAME.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                continue


class MemoryStore:
    """Runs held in memory: the store protocol for tests and notebooks. Lives as long as the object."""

    def __init__(self, runs: Iterable[NewRun] = ()) -> None:
        self._records: list[RunRecord] = []
        self._results: dict[tuple[str, str], str] = {}
        for run in runs:
            self.save(run)

    def save(self, run: NewRun) -> RunRecord:
        """Keep ``run`` (its results as JSON text, so later loads are independent copies)."""
        def write(run_id: str, file: str, entry: ExperimentRun) -> str:
            self._results[(run_id, file)] = entry.result.to_json()
            return hashlib.sha256(self._results[(run_id, file)].encode()).hexdigest()

        record = _make_record(run, write)
        record = replace(record, location=f"memory:{record.id}")
        self._records.append(record)
        return record

    def listing(self) -> Listing:
        """Every run, oldest first."""
        return Listing(tuple(self._records))

    def find(self, reference: str) -> RunRecord:
        """A run by reference (see :func:`resolve`)."""
        return resolve(self.listing(), reference, "the memory store")

    def result(self, record: RunRecord, nodeid: str) -> ExperimentResult:
        """Load one experiment's result of ``record``."""
        entry = _entry(record, nodeid)
        return ExperimentResult.from_dict(json.loads(self._results[(record.id, entry.file)]), source=record.location)
