"""Saved runs described: what is saved for a run and its experiments, and finding a run.

A run's *record* is a JSON document: id, name, time, git commit, machine,
versions, options, and per experiment its file, checksum, seeds, passed
flag, definition fingerprint and gate specs. Runs are named by a
*reference*: ``latest``, a run id, a name (its newest run) or a unique id
prefix (:func:`resolve`).
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.defaults import LATEST
from pytest_crystallize.core.environment import GitInfo
from pytest_crystallize.core.results import ExperimentResult
from pytest_crystallize.core.store.definitions import definition_problem
from pytest_crystallize.core.vocabulary import BETTER
from pytest_crystallize.errors import ResultsError

__all__ = [
    "MAX_NAME_LENGTH",
    "RUN_ID",
    "ExperimentRun",
    "Listing",
    "NewRun",
    "RunRecord",
    "SavedExperiment",
    "UnreadableRun",
    "check_run_name",
    "new_run_id",
    "parse_record",
    "resolve",
]

RUN_FORMAT: Final = "pytest-crystallize/run"
RUN_FORMAT_VERSION: Final = 1
#: The longest run name, in characters (ASCII only, so also in bytes).
MAX_NAME_LENGTH: Final = 64
_NAME: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_LENGTH - 1}}}")
#: What a run id looks like (see :func:`new_run_id`).
RUN_ID: Final = re.compile(r"\d{8}-\d{6}-\d{6}-[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class ExperimentRun:
    """One experiment's result to save, with its definition and gate specs.

    ``parquet`` is ``result``'s Parquet file as it was already written (by an
    xdist worker, for the trip to the controller), which a store saves as it
    is instead of encoding ``result`` again; ``None`` when there is none.
    """

    nodeid: str
    result: ExperimentResult
    definition: Mapping[str, Any]
    fingerprint: str
    gate: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    parquet: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class NewRun:
    """Everything a store needs to save a run."""

    experiments: tuple[ExperimentRun, ...]
    name: str | None = None
    git: GitInfo | None = None
    machine: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SavedExperiment:
    """One experiment of a saved run, as its record describes it."""

    nodeid: str
    experiment: str
    file: str
    sha256: str
    fingerprint: str
    definition: Mapping[str, Any]
    gate: Mapping[str, Any]
    master_seed: int
    replicates: int
    passed: bool
    values: int

    def __post_init__(self) -> None:
        if not self.file or os.path.basename(self.file) != self.file or self.file in (".", ".."):
            msg = f"experiment {self.nodeid!r}: result file name {self.file!r} is not a plain file name"
            raise ValueError(msg)
        object.__setattr__(self, "definition", MappingProxyType(dict(self.definition)))
        object.__setattr__(self, "gate", MappingProxyType(dict(self.gate)))

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        return {
            "nodeid": self.nodeid, "experiment": self.experiment, "file": self.file, "sha256": self.sha256,
            "fingerprint": self.fingerprint, "definition": dict(self.definition), "gate": dict(self.gate),
            "master_seed": self.master_seed, "replicates": self.replicates, "passed": self.passed,
            "values": self.values,
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The record of a saved run; ``location`` says where it was read from (not saved)."""

    id: str
    name: str | None
    created_at: str
    git: GitInfo | None
    machine: Mapping[str, Any]
    versions: Mapping[str, str]
    options: Mapping[str, Any]
    experiments: Mapping[str, SavedExperiment]
    location: str = ""

    def __post_init__(self) -> None:
        for name in ("machine", "versions", "options", "experiments"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def to_dict(self) -> dict[str, Any]:
        """Return the record as saved (plain JSON)."""
        return {
            "format": RUN_FORMAT, "version": RUN_FORMAT_VERSION, "id": self.id, "name": self.name,
            "created_at": self.created_at, "git": None if self.git is None else self.git.to_dict(),
            "machine": dict(self.machine), "versions": dict(self.versions), "options": dict(self.options),
            "experiments": [e.to_dict() for e in self.experiments.values()],
        }

    @property
    def label(self) -> str:
        """``id`` plus the name and commit, for messages and headings."""
        extra = [x for x in (self.name, self.git.short if self.git else None) if x]
        return f"{self.id} ({', '.join(extra)})" if extra else self.id


_GATE_KEYS: Final[dict[str, type | tuple[type, ...]]] = {
    "metric": str, "better": str, "margin": (int, float, type(None)), "relative": bool, "test": str, "source": str,
}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _experiment_problem(e: SavedExperiment) -> str | None:
    """What is wrong with the types of a parsed experiment entry, or None."""
    for name in ("nodeid", "experiment", "file", "sha256", "fingerprint"):
        if not isinstance(getattr(e, name), str):
            return f"{name} is {getattr(e, name)!r}, expected a string"
    for name in ("master_seed", "replicates", "values"):
        if not _is_count(getattr(e, name)):
            return f"{name} is {getattr(e, name)!r}, expected an integer >= 0"
    if not isinstance(e.passed, bool):
        return f"passed is {e.passed!r}, expected true or false"
    problem = definition_problem(e.definition)
    if problem is not None:
        return problem
    for metric, spec in e.gate.items():
        if not isinstance(spec, Mapping) or not set(spec) <= set(_GATE_KEYS) or spec.get("metric") != metric:
            return f"gate of {metric!r} is {spec!r}, expected a gate spec of that metric"
        if spec.get("better") not in BETTER:
            return f"gate of {metric!r}: better is {spec.get('better')!r}, expected 'higher' or 'lower'"
        wrong = [k for k, v in spec.items()
                 if not isinstance(v, _GATE_KEYS[k]) or (k == "margin" and isinstance(v, bool))]
        if wrong or not (spec.get("margin") is None or 0 <= spec["margin"] < math.inf):
            return f"gate of {metric!r}: {wrong[0] if wrong else 'margin'} is not valid in {dict(spec)!r}"
    return None


def _record_problem(data: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a run record's top level, or None."""
    if not isinstance(data.get("id"), str) or not isinstance(data.get("created_at"), str):
        return "id and created_at must be strings"
    if data.get("name") is not None and not isinstance(data["name"], str):
        return f"name is {data['name']!r}, expected a string or null"
    for name in ("machine", "versions", "options"):
        if not isinstance(data.get(name), Mapping):
            return f"{name} is {data.get(name)!r:.60}, expected an object"
    if not isinstance(data.get("experiments"), list) or not all(isinstance(e, Mapping) for e in data["experiments"]):
        return "experiments must be a list of objects"
    git = data.get("git")
    if git is not None and not (isinstance(git, Mapping) and isinstance(git.get("commit"), str)
                                and isinstance(git.get("dirty"), bool)
                                and (git.get("branch") is None or isinstance(git.get("branch"), str))):
        return f"git is {git!r:.80}, expected null or an object with commit, branch and dirty"
    return None


def parse_record(data: Any, source: str) -> RunRecord:
    """Build a record from its JSON data, checking every field's type; ``source`` names the file in errors."""
    if not isinstance(data, Mapping) or data.get("format") != RUN_FORMAT:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        msg = f"{source}: not a pytest-crystallize run record (format {found!r})"
        raise ResultsError(msg)
    if data.get("version") != RUN_FORMAT_VERSION:
        msg = (f"{source}: run record version {data.get('version')!r} is not supported by this version "
               f"of pytest-crystallize (expects {RUN_FORMAT_VERSION})")
        raise ResultsError(msg)
    problem = _record_problem(data)
    if problem is not None:
        msg = f"{source}: malformed run record ({problem})"
        raise ResultsError(msg)
    try:
        entries = [SavedExperiment(**e) for e in data["experiments"]]
        problems = [(e.nodeid, p) for e in entries if (p := _experiment_problem(e)) is not None]
        if problems:
            nodeid, problem = problems[0]
            msg = f"experiment {nodeid!r}: {problem}"
            raise ValueError(msg)
        experiments = {e.nodeid: e for e in entries}
        if len(experiments) != len(entries):
            msg = "an experiment is listed twice"
            raise ValueError(msg)
        return RunRecord(
            id=data["id"], name=data["name"], created_at=data["created_at"],
            git=GitInfo.from_dict(data["git"]), machine=data["machine"], versions=data["versions"],
            options=data["options"], experiments=experiments, location=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{source}: malformed run record ({type(exc).__name__}: {exc})"
        raise ResultsError(msg) from None


@dataclass(frozen=True, slots=True)
class UnreadableRun:
    """A run directory whose record cannot be read: its id (the directory name), why, and its name if known."""

    id: str
    problem: str
    name: str | None = None
    name_known: bool = False


@dataclass(frozen=True, slots=True)
class Listing:
    """The readable runs of a store, oldest first, and one line per unreadable one.

    ``unreadable`` describes the unreadable runs so that :func:`resolve`
    can refuse to skip over one that may be the run asked for.
    """

    runs: tuple[RunRecord, ...]
    problems: tuple[str, ...] = ()
    unreadable: tuple[UnreadableRun, ...] = ()


def check_run_name(name: str) -> str:
    """Return ``name`` if it can name a run, else raise ResultsError saying why.

    A name is kept in the run's record, never in a file name, so its limit
    of :data:`MAX_NAME_LENGTH` characters is the store's own, far below any
    file system's.
    """
    rule = (f"use 1-{MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit, "
            f"and not {LATEST!r}")
    if len(name) > MAX_NAME_LENGTH:
        msg = (f"run name {name[:24]!r}... is not allowed: it is too long ({len(name)} characters, at most "
               f"{MAX_NAME_LENGTH}); {rule}")
        raise ResultsError(msg)
    if not _NAME.fullmatch(name) or name == LATEST:
        msg = f"run name {name!r} is not allowed: {rule}"
        raise ResultsError(msg)
    return name


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time to the microsecond plus 32 random bits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S-%f}-{secrets.token_hex(4)}"


def resolve(listing: Listing, reference: str, where: str) -> RunRecord:
    """The run ``reference`` names: ``latest``, an id, a name (its newest run) or a unique id prefix.

    ``latest`` and names never skip over an unreadable run that is newer than
    the run they would pick and may be the one meant (any unreadable run for
    ``latest``; one with that name or an unknown name for a name): that is an
    error naming the file, so that a gate never silently compares with an
    older run.
    """
    runs = listing.runs
    found: RunRecord | None = None
    if reference == LATEST:
        found = runs[-1] if runs else None
        _refuse_newer_unreadable(listing, found, reference, lambda u: True)
    else:
        found = next((r for r in runs if r.id == reference), None)
        unreadable = [u for u in listing.unreadable if u.id == reference]
        if found is None and unreadable:
            msg = f"run {reference} in {where} cannot be read: {unreadable[0].problem}"
            raise ResultsError(msg)
        named = next((r for r in reversed(runs) if r.name == reference), None)
        if found is None and named is not None:
            _refuse_newer_unreadable(listing, named, reference, lambda u: not u.name_known or u.name == reference)
            found = named
        if found is None:
            _refuse_newer_unreadable(listing, None, reference, lambda u: u.name_known and u.name == reference)
            found = _by_prefix(listing, reference, where)
    if found is None:
        count = f"{len(runs)} run" if len(runs) == 1 else f"{len(runs)} runs"
        hint = "no runs are saved there" if not runs else f"{count}, newest {runs[-1].label}"
        problems = f"; {len(listing.problems)} unreadable run(s): {listing.problems[0]}" if listing.problems else ""
        msg = (f"no saved run matches {reference!r} in {where} ({hint}{problems}); save one with "
               "--crystallize-save[=NAME] or --crystallize-autosave")
        raise ResultsError(msg)
    return found


def _by_prefix(listing: Listing, reference: str, where: str) -> RunRecord | None:
    """The one run whose id starts with ``reference`` (4 characters at least), readable or not."""
    if len(reference) < 4:
        return None
    prefixed = [r for r in listing.runs if r.id.startswith(reference)]
    broken = [u for u in listing.unreadable if u.id.startswith(reference)]
    if len(prefixed) + len(broken) > 1:
        msg = (f"run reference {reference!r} is ambiguous in {where}: it starts {len(prefixed) + len(broken)} "
               "run ids")
        raise ResultsError(msg)
    if broken:
        msg = f"run {broken[0].id} in {where} cannot be read: {broken[0].problem}"
        raise ResultsError(msg)
    return prefixed[0] if prefixed else None


def _refuse_newer_unreadable(
    listing: Listing, found: RunRecord | None, reference: str, may_match: Callable[[UnreadableRun], bool]
) -> None:
    """Raise ResultsError if an unreadable run newer than ``found`` may be the one ``reference`` means."""
    # Only directories named like run ids have a time to be newer by; others are only listed as problems.
    newer = [u for u in listing.unreadable
             if RUN_ID.fullmatch(u.id) and (found is None or u.id > found.id) and may_match(u)]
    if not newer:
        return
    # A run known to carry the name is the likelier culprit than one whose name cannot be read.
    newest = max(newer, key=lambda u: (u.name_known, u.id))
    if reference == LATEST or newest.name_known:
        what = f"the newest run matching {reference!r} cannot be read"
    else:
        what = f"a saved run that may be the newest {reference!r} (its name cannot be read) is unreadable"
    instead = f"; the newest readable match is {found.label}" if found is not None else ""
    msg = (f"{what}: {newest.problem}. Delete or repair that run, or name another run (e.g. by its id)"
           f"{instead}")
    raise ResultsError(msg)
