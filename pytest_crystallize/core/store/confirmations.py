"""Explore, then confirm: pre-registration records and the ledger of fresh seed streams.

An exploratory run may look at anything. A *confirmatory* run
(``--crystallize-confirm`` or ``confirm=True`` on the marker) first writes a
pre-registration record (its hypotheses and definition, their fingerprint,
the code's fingerprint, the replicates and design, the git commit), then runs
on fresh replicates. The records of one experiment are its ledger::

    <root>/confirm/<experiment key>/attempt-<n>.json           pre-registration of attempt n (from 1)
    <root>/confirm/<experiment key>/attempt-<n>.outcome.json   what attempt n found (after the run)

Files, records and verdicts count attempts from 1; inside, :attr:`Attempt.attempt`
counts from 0 (``k = n - 1``). Records written before files were counted from 1
(``attempt-0.json``, without ``counted_from``) are read as they are.

Fresh data: attempt ``k`` draws its replicate seeds from the master seed
:func:`confirmation_seed` ``(master_seed, k)``, a 63-bit number derived with
``SeedSequence`` from the master seed, a fixed tag and ``k``; exploratory runs
use the master seed itself, so no earlier run drew these replicate streams.
``k`` is claimed by creating its file exclusively (``O_EXCL``), so
concurrent writers (xdist workers, two CI jobs on one store) never share an
attempt; a record is written whole (a temporary file, then a link) or not at
all. Before the run, the seed is also checked against the saved runs.

A confirmation is *clean* (:attr:`Confirmation.confirmed`) when its data are
fresh, it is pre-registered, its definition (hypotheses, treatments, inputs),
code and replicates are those of the exploratory run it confirms and of
every earlier attempt, and no earlier attempt failed or left no outcome
(confirming again until it works is the laundering this prevents). Anything
else is stated: in the verdicts, in the report, and it fails
``--crystallize-require-confirmed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.budget import BUDGET
from pytest_crystallize.core.store.definitions import definition_changes, definition_of, fingerprint
from pytest_crystallize.core.store.journal import journal_fingerprint, journal_key
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.records import RunRecord

__all__ = [
    "CONFIRM_DIR",
    "Attempt",
    "Confirmation",
    "ConfirmationLedger",
    "confirmation_of",
    "confirmation_seed",
    "with_confirmation",
]

CONFIRM_DIR: Final = "confirm"
#: Mixed into every confirmation seed, so no ordinary master seed's streams are drawn.
_TAG: Final = 0x636F6E6669726D  # "confirm"
_ATTEMPT: Final = re.compile(r"attempt-(\d+)\.json")
_MOST_ATTEMPTS: Final = 100_000


def confirmation_seed(master_seed: int, attempt: int) -> int:
    """The master seed of confirmation ``attempt`` (0-based) of an experiment whose master seed is ``master_seed``."""
    words = np.random.SeedSequence([master_seed, _TAG, attempt]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) | (int(words[1]) >> 1)  # 63 bits: an int64 in Parquet and JSON


@dataclass(frozen=True, slots=True)
class Attempt:
    """One pre-registration: what a confirmatory attempt promised to test, written before it ran."""

    attempt: int
    identity: str
    created_at: str
    seed: int
    master_seed: int
    replicates: int
    design: str
    definition: Mapping[str, Any]
    fingerprint: str
    code: str
    git: Mapping[str, Any] | None = None
    explored_in: str | None = None
    #: What it found, once the run finished: ``{"passed": bool, "confirmed": bool}``; None before (or interrupted).
    outcome: Mapping[str, Any] | None = None
    #: The number its file and record give the first attempt: 1, or 0 in a record written by an older version.
    counted_from: int = 1

    @property
    def file_stem(self) -> str:
        """Its files' name without the suffix: ``attempt-<n>``."""
        return f"attempt-{self.attempt + self.counted_from}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, the attempt counted from :attr:`counted_from`."""
        return {
            "attempt": self.attempt + self.counted_from, "counted_from": self.counted_from,
            "identity": self.identity, "created_at": self.created_at, "seed": self.seed,
            "master_seed": self.master_seed, "replicates": self.replicates, "design": self.design,
            "definition": dict(self.definition), "fingerprint": self.fingerprint, "code": self.code,
            "git": None if self.git is None else dict(self.git), "explored_in": self.explored_in,
        }


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What a confirmatory attempt is worth: fresh data, pre-registered, and what taints it."""

    attempt: int
    seed: int
    fresh: bool
    preregistered: bool
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def confirmed(self) -> bool:
        """Fresh, pre-registered, and nothing changed or repeated since exploring."""
        return self.fresh and self.preregistered and not self.problems

    @property
    def label(self) -> str:
        """A few words for the verdict line."""
        if self.confirmed:
            return f"confirmatory attempt {self.attempt + 1}: pre-registered, fresh data"
        return f"confirmatory attempt {self.attempt + 1}: NOT clean ({self.problems[0]})" if self.problems else (
            f"confirmatory attempt {self.attempt + 1}: NOT clean (data not fresh)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data for a verdict's details."""
        return {
            "attempt": self.attempt + 1, "seed": self.seed, "fresh": self.fresh,
            "preregistered": self.preregistered, "confirmed": self.confirmed,
            "problems": list(self.problems), "notes": list(self.notes),
        }


class ConfirmationLedger:
    """The pre-registrations kept in one store. Stateless between calls: every read goes to disk."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def directory(self, identity: str) -> Path:
        """Where the attempts of experiment ``identity`` (a pytest node id) are kept."""
        return self.root / CONFIRM_DIR / journal_key(identity)

    def attempts(self, identity: str) -> list[Attempt]:
        """Every readable attempt of ``identity``, oldest first, with its outcome when recorded."""
        directory = self.directory(identity)
        if directory.is_symlink():
            msg = f"{directory}: is a symbolic link; the ledger never follows a link out of the store"
            raise ResultsError(msg)
        if not directory.is_dir():
            return []
        found = []
        for path in directory.iterdir():
            match = _ATTEMPT.fullmatch(path.name)
            if match is None or path.is_symlink():
                continue
            found.append(_read_attempt(path, directory / f"attempt-{match.group(1)}.outcome.json"))
        return sorted(found, key=lambda a: a.attempt)

    def preregister(
        self, identity: str, experiment: Experiment, *, git: Mapping[str, Any] | None = None,
        saved_runs: Iterable[RunRecord] = (), resume: bool = False,
    ) -> tuple[Attempt, Confirmation]:
        """Claim the next attempt, write its pre-registration, and judge it; ``saved_runs`` oldest first.

        Returns the attempt (run the experiment with master seed
        ``attempt.seed``) and what the confirmation is worth. Raises
        ResultsError when the ledger cannot be written (then nothing is
        pre-registered, and the run must not call itself confirmatory).

        With ``resume``, the last attempt, if it was interrupted (no outcome)
        and registered exactly this experiment, is carried on instead: same
        pre-registration, same seed, so a resumed journal completes it and
        the result is the one the uninterrupted attempt would have given.
        """
        earlier = self.attempts(identity)
        runs = list(saved_runs)
        seeds = {a.seed for a in earlier}
        explored = next((r for r in reversed(runs) if identity in r.experiments
                         and r.experiments[identity].master_seed not in seeds), None)
        definition = definition_of(experiment)
        design = _design(experiment)
        draft = Attempt(
            attempt=0, identity=identity, created_at=datetime.now(UTC).isoformat(), seed=0,
            master_seed=experiment.seed, replicates=experiment.replicates, design=design,
            definition=definition, fingerprint=fingerprint(definition),
            code=journal_fingerprint(replace(experiment, seed=0)), git=git,
            explored_in=None if explored is None else explored.id,
        )
        resumed = _interrupted(earlier, draft) if resume else None
        if resumed is not None:
            attempt = resumed
            earlier = [a for a in earlier if a.attempt != resumed.attempt]
        else:
            attempt = self._claim(identity, draft, start=1 + max((a.attempt for a in earlier), default=-1))
        used_by = [r.id for r in runs
                   if identity in r.experiments and r.experiments[identity].master_seed == attempt.seed]
        problems = _changes(attempt, explored, earlier)
        if used_by:
            problems.insert(0, f"data reused: saved run {used_by[0]} already ran seed {attempt.seed}")
        notes = [] if explored is not None else ["no saved exploratory run of this experiment to confirm"]
        if explored is not None:
            notes.append(f"confirms the exploratory run {explored.id}")
        if resumed is not None:
            notes.append(f"resumes attempt {resumed.attempt + 1} ({resumed.created_at[:10]}), interrupted before "
                         f"its outcome, on its pre-registration and seed")
        confirmation = Confirmation(
            attempt.attempt, attempt.seed, fresh=not used_by, preregistered=True,
            problems=tuple(problems), notes=tuple(notes),
        )
        return attempt, confirmation

    def _claim(self, identity: str, draft: Attempt, start: int) -> Attempt:
        """Write ``draft`` as the first free attempt from ``start`` on, created exclusively."""
        directory = self.directory(identity)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"{directory}: the confirmation ledger cannot be written ({exc}); nothing was pre-registered"
            raise ResultsError(msg) from None
        for k in range(start, start + _MOST_ATTEMPTS):
            attempt = replace(draft, attempt=k, seed=confirmation_seed(draft.master_seed, k))
            if _create_exclusively(directory / f"{attempt.file_stem}.json", attempt.to_dict()):
                return attempt
        msg = f"{directory}: no free attempt number after {start + _MOST_ATTEMPTS}"  # pragma: no cover
        raise ResultsError(msg)  # pragma: no cover

    def run(
        self, identity: str, experiment: Experiment, run: Callable[[Experiment], ExperimentResult], *,
        git: Mapping[str, Any] | None = None, saved_runs: Iterable[RunRecord] = (), resume: bool = False,
    ) -> ExperimentResult:
        """Pre-register ``experiment``, ``run`` it on its fresh seed stream, and record the outcome.

        Every verdict of the result says what the confirmation is worth (see
        :func:`with_confirmation`). Raises ResultsError when nothing could be
        pre-registered; an interrupted run leaves its attempt without outcome,
        which ``resume`` carries on (see :meth:`preregister`).
        """
        attempt, confirmation = self.preregister(
            identity, experiment, git=git, saved_runs=saved_runs, resume=resume,
        )
        result = with_confirmation(run(replace(experiment, seed=attempt.seed)), confirmation)
        if not _cut_short(result):  # a fixed design the budget cut short is unfinished: resume completes it
            self.record_outcome(attempt, result, confirmation)
        return result

    def record_outcome(self, attempt: Attempt, result: ExperimentResult, confirmation: Confirmation) -> None:
        """Write what ``attempt`` found, so later attempts know it (written once, never replaced)."""
        path = self.directory(attempt.identity) / f"{attempt.file_stem}.outcome.json"
        outcome = {"passed": result.passed, "confirmed": confirmation.confirmed and result.passed,
                   "holds": [v.holds for v in result.verdicts]}
        _create_exclusively(path, outcome)


def with_confirmation(result: ExperimentResult, confirmation: Confirmation) -> ExperimentResult:
    """``result`` whose every verdict carries ``confirmation`` (details and design label); holds is unchanged."""
    verdicts = tuple(
        dataclasses.replace(v, details={
            **v.details, "confirmation": confirmation.to_dict(),
            "design": f"{v.details.get('design', 'fixed design')}; {confirmation.label}",
        })
        for v in result.verdicts
    )
    return dataclasses.replace(result, verdicts=verdicts)


def confirmation_of(result: ExperimentResult) -> str | None:
    """Why ``result`` is not a clean confirmation (None when every verdict is one)."""
    for verdict in result.verdicts:
        confirmation = verdict.details.get("confirmation")
        if not isinstance(confirmation, Mapping):
            return "it is not a confirmatory run (run it with --crystallize-confirm or confirm=True)"
        if not confirmation.get("confirmed"):
            problems = confirmation.get("problems") or ["its data were not fresh"]
            return f"confirmatory attempt {confirmation.get('attempt')} is not clean: {'; '.join(problems)}"
    if not result.verdicts:
        return "it has no verdicts to confirm"
    return None


def _cut_short(result: ExperimentResult) -> bool:
    """A fixed design the time budget stopped: its verdicts are not valid until a resumed run completes it."""
    provenance = result.provenance
    return provenance.stopped_by == BUDGET and not provenance.anytime and provenance.looks is None


def _interrupted(earlier: list[Attempt], draft: Attempt) -> Attempt | None:
    """The last attempt, if it has no outcome and registered what ``draft`` registers; else None."""
    if not earlier:
        return None
    last = earlier[-1]
    same = (last.outcome is None and last.fingerprint == draft.fingerprint and last.code == draft.code
            and last.master_seed == draft.master_seed and last.replicates == draft.replicates
            and last.design == draft.design)
    return last if same else None


def _design(experiment: Experiment) -> str:
    if experiment.anytime is not None:
        return f"anytime, at most {experiment.replicates} replicates"
    if experiment.sequential is not None:
        return f"group-sequential, {experiment.sequential.looks} looks, at most {experiment.replicates} replicates"
    return f"fixed, {experiment.replicates} replicates"


def _changes(attempt: Attempt, explored: RunRecord | None, earlier: list[Attempt]) -> list[str]:
    """What taints ``attempt``: changes since the exploratory run and earlier attempts, and failed attempts."""
    problems: list[str] = []
    if explored is not None:
        saved = explored.experiments[attempt.identity]
        if saved.fingerprint != attempt.fingerprint:
            what = "; ".join(definition_changes(saved.definition, attempt.definition)) or "the definition"
            problems.append(f"changed after the exploratory run {explored.id}: {what}")
    for before in earlier:
        name = f"attempt {before.attempt + 1} ({before.created_at[:10]})"
        if before.fingerprint != attempt.fingerprint:
            what = "; ".join(definition_changes(before.definition, attempt.definition)) or "the definition"
            problems.append(f"changed since the pre-registration of {name}: {what}")
        elif before.code != attempt.code:
            problems.append(f"the experiment's code changed since the pre-registration of {name}")
        elif before.replicates != attempt.replicates or before.design != attempt.design:
            problems.append(f"the design changed since {name}: {before.design} -> {attempt.design}")
        if before.outcome is None:
            problems.append(f"{name} has no recorded outcome (interrupted?); a repeated confirmation is not clean")
        elif not before.outcome.get("confirmed"):
            problems.append(f"{name} did not confirm; confirming again until it works is not a confirmation")
    return problems


def _create_exclusively(path: Path, data: Mapping[str, Any]) -> bool:
    """Write ``data`` as JSON to ``path`` unless it exists: whole or not at all. False if it existed."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(temporary, path)  # fails if the name exists: the atomic claim of a whole file
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: claim the name itself, then fill it
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=1, sort_keys=True)
        return True
    except OSError as exc:
        msg = f"{path}: the confirmation ledger cannot be written ({exc})"
        raise ResultsError(msg) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _read_attempt(path: Path, outcome_path: Path) -> Attempt:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        outcome = json.loads(outcome_path.read_text(encoding="utf-8")) if outcome_path.is_file() else None
        counted_from = data.pop("counted_from", 0)  # absent: written when attempt-0.json was the first
        data["attempt"] -= counted_from
        return Attempt(**data, outcome=outcome, counted_from=counted_from)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        msg = f"{path}: not a readable pre-registration ({exc}); it was written by this store's ledger only"
        raise ResultsError(msg) from None
