"""Saved runs described: what is saved for a run and its experiments, and finding a run.

A run's *record* is a JSON document: id, name, time, git commit, machine,
versions, options, and per experiment its file, checksum, seeds, passed
flag, definition fingerprint and gate specs. Runs are named by a
*reference*: ``latest``, a run id, a name (its newest run) or a unique id
prefix (:func:`resolve`).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.environment import GitInfo
from pytest_crystallize.core.results import ExperimentResult
from pytest_crystallize.errors import ResultsError

__all__ = [
    "LATEST",
    "ExperimentRun",
    "Listing",
    "NewRun",
    "RunRecord",
    "SavedExperiment",
    "check_run_name",
    "new_run_id",
    "parse_record",
    "resolve",
]

RUN_FORMAT: Final = "pytest-crystallize/run"
RUN_FORMAT_VERSION: Final = 1
#: The reference that means "the newest saved run".
LATEST: Final = "latest"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class ExperimentRun:
    """One experiment's result to save, with its definition and gate specs."""

    nodeid: str
    result: ExperimentResult
    definition: Mapping[str, Any]
    fingerprint: str
    gate: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


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


def parse_record(data: Any, source: str) -> RunRecord:
    """Build a record from its JSON data; ``source`` names the file in errors."""
    if not isinstance(data, Mapping) or data.get("format") != RUN_FORMAT:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        msg = f"{source}: not a pytest-crystallize run record (format {found!r})"
        raise ResultsError(msg)
    if data.get("version") != RUN_FORMAT_VERSION:
        msg = (f"{source}: run record version {data.get('version')!r} is not supported by this version "
               f"of pytest-crystallize (expects {RUN_FORMAT_VERSION})")
        raise ResultsError(msg)
    try:
        experiments = {e["nodeid"]: SavedExperiment(**e) for e in data["experiments"]}
        return RunRecord(
            id=str(data["id"]), name=data["name"], created_at=str(data["created_at"]),
            git=GitInfo.from_dict(data["git"]), machine=data["machine"], versions=data["versions"],
            options=data["options"], experiments=experiments, location=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{source}: malformed run record ({type(exc).__name__}: {exc})"
        raise ResultsError(msg) from None


@dataclass(frozen=True, slots=True)
class Listing:
    """The readable runs of a store, oldest first, and one line per unreadable one."""

    runs: tuple[RunRecord, ...]
    problems: tuple[str, ...] = ()


def check_run_name(name: str) -> str:
    """Return ``name`` if it can name a run, else raise ResultsError saying why."""
    if not _NAME.fullmatch(name) or name == LATEST:
        msg = (f"run name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
               f"starting with a letter or digit, and not {LATEST!r}")
        raise ResultsError(msg)
    return name


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time to the microsecond plus 32 random bits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S-%f}-{secrets.token_hex(4)}"


def resolve(listing: Listing, reference: str, where: str) -> RunRecord:
    """The run ``reference`` names: ``latest``, an id, a name (its newest run) or a unique id prefix."""
    runs = listing.runs
    found: RunRecord | None = None
    if reference == LATEST:
        found = runs[-1] if runs else None
    else:
        found = next((r for r in runs if r.id == reference), None)
        found = found or next((r for r in reversed(runs) if r.name == reference), None)
        prefixed = [r for r in runs if r.id.startswith(reference)] if len(reference) >= 4 else []
        if found is None and len(prefixed) == 1:
            found = prefixed[0]
        elif found is None and len(prefixed) > 1:
            msg = f"run reference {reference!r} is ambiguous in {where}: it starts {len(prefixed)} run ids"
            raise ResultsError(msg)
    if found is None:
        hint = "no runs are saved there" if not runs else f"{len(runs)} runs, newest {runs[-1].label}"
        problems = f"; {len(listing.problems)} unreadable run(s): {listing.problems[0]}" if listing.problems else ""
        msg = (f"no saved run matches {reference!r} in {where} ({hint}{problems}); save one with "
               "--crystallize-save[=NAME] or --crystallize-autosave")
        raise ResultsError(msg)
    return found


