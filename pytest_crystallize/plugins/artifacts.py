"""``ArtifactPlugin``: write what steps put in ``ctx.artifacts`` to disk.

Layout, one directory per run version::

    <root>/<experiment>/v<N>/<condition>/replicate_<r>/<step>/<artifact name>
    <root>/<experiment>/v<N>/<condition>/replicate_<r>/_experiment/<artifact name>
    <root>/<experiment>/v<N>/metadata.json

An artifact is written after the step that added (or replaced) it. One added
(or replaced) outside any step, by the experiment function itself, an
evaluator or a datasource, is written after the replicate (failed ones too)
under ``_experiment/``; each artifact is written once, where it was last
changed. Names are
relative paths; one that would leave its step directory (``..``, an absolute
path, a symlink pointing out) is refused with a
:class:`~pytest_crystallize.errors.ConfigurationError`, which fails that
replicate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.artifacts import check_artifact_name
from pytest_crystallize.core.defaults import DEFAULT_ARTIFACTS_DIR
from pytest_crystallize.errors import ConfigurationError, CrystallizeWarning
from pytest_crystallize.hookspecs import hookimpl

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.pipeline import PipelineStep
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["DEFAULT_ROOT", "METADATA_FILE", "OUTSIDE_STEPS", "ArtifactPlugin"]

#: Where artifacts go when no ``root_dir`` is given: relative to the working
#: directory outside pytest, to pytest's rootdir (or ini ``crystallize_artifacts_dir``) in it.
DEFAULT_ROOT: Final = DEFAULT_ARTIFACTS_DIR
METADATA_FILE: Final = "metadata.json"
#: The directory, in place of a step's, of artifacts added outside any step.
OUTSIDE_STEPS: Final = "_experiment"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._\-\[\]=+,@]+")
_VERSION: Final = re.compile(r"v(\d+)")


def _segment(name: str) -> str:
    """``name`` made into one safe directory name (no separators, never ``.`` or ``..``)."""
    cleaned = _UNSAFE.sub("_", name).strip(".") or "_"
    return cleaned


def _versions(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    found = (_VERSION.fullmatch(p.name) for p in directory.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


class ArtifactPlugin:
    """Save ``ctx.artifacts`` after each step (and after the replicate) under ``root_dir``.

    ``root_dir`` defaults to ``crystallize_artifacts``; a relative path is
    taken from pytest's rootdir in a pytest run (never the working
    directory) and from the working directory in ``run_experiment``.
    ``versioned=False`` reuses ``v0`` and clears it at the start of each run;
    ``versioned=True`` makes ``v0``, ``v1``, ... and keeps the newest ``keep``
    versions (``keep=None``: all of them; ``keep`` needs ``versioned=True``).
    Artifacts added outside a step go under ``_experiment/`` in place of a
    step directory, after the replicate. ``metadata.json`` is written after
    the run. The directory of a run is fixed in the main process before the
    replicates start, so worker processes write to the same place.
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str] | None = None,
        versioned: bool = False,
        keep: int | None = None,
    ) -> None:
        if root_dir is not None and not isinstance(root_dir, (str, os.PathLike)):
            msg = (
                f"ArtifactPlugin: root_dir must be a path (str or pathlib.Path) or None, "
                f"got {type(root_dir).__name__} {root_dir!r:.40}"
            )
            raise ConfigurationError(msg)
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            msg = f"ArtifactPlugin: keep must be an integer >= 1 or None, got {keep!r}"
            raise ConfigurationError(msg)
        if keep is not None and not versioned:
            msg = (
                f"ArtifactPlugin: keep={keep!r} needs versioned=True (keep prunes old versions v0, v1, ...; "
                f"without versioned=True every run reuses v0)"
            )
            raise ConfigurationError(msg)
        self.root_dir = Path(root_dir) if root_dir is not None else None
        self.versioned = bool(versioned)
        self.keep = keep
        #: Directory relative paths are taken from, and the default root; the
        #: pytest plugin sets both (see :meth:`anchor`).
        self.base_dir: Path | None = None
        self.default_root: Path | None = None
        self._run_dirs: dict[str, Path] = {}
        self._written: dict[int, dict[str, object]] = {}

    def __repr__(self) -> str:
        return f"ArtifactPlugin(root_dir={self.root_dir!r}, versioned={self.versioned!r}, keep={self.keep!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_written"] = {}
        return state

    def anchor(self, base_dir: Path, default_root: Path | None = None) -> None:
        """Resolve relative roots against ``base_dir``; use ``default_root`` when none is given."""
        self.base_dir = Path(base_dir)
        self.default_root = default_root

    @property
    def root(self) -> Path:
        """The directory every experiment's artifacts go under."""
        root = self.root_dir
        if root is None:
            root = self.default_root or Path(DEFAULT_ROOT)
        if not root.is_absolute():
            root = (self.base_dir or Path.cwd()) / root
        return root

    def run_dir(self, experiment: Experiment) -> Path:
        """The version directory of ``experiment``'s current run (after ``crystallize_run_before``)."""
        try:
            return self._run_dirs[experiment.name]
        except KeyError:
            msg = f"ArtifactPlugin: experiment {experiment.name!r} is not running"
            raise ConfigurationError(msg) from None

    # -- hooks --------------------------------------------------------------------
    @hookimpl
    def crystallize_run_before(self, experiment: Experiment) -> None:
        """Make this run's version directory (and prune old versions)."""
        experiment_dir = self.root / _segment(experiment.name)
        versions = _versions(experiment_dir)
        version = (versions[-1] + 1 if versions else 0) if self.versioned else 0
        run_dir = experiment_dir / f"v{version}"
        if not self.versioned and run_dir.is_dir():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.versioned and self.keep is not None:
            for old in [*versions, version][:-self.keep]:
                shutil.rmtree(experiment_dir / f"v{old}", ignore_errors=True)
        self._run_dirs[experiment.name] = run_dir

    @hookimpl
    def crystallize_step_after(
        self, experiment: Experiment, step: PipelineStep, data: Any, ctx: FrozenContext
    ) -> None:
        """Write the artifacts the step added or replaced."""
        artifacts = ctx.artifacts
        if not artifacts:
            return
        self._write(experiment, ctx, _segment(step.name), self._written.setdefault(id(ctx), {}))

    @hookimpl
    def crystallize_replicate_after(
        self, experiment: Experiment, ctx: FrozenContext, error: BaseException | None
    ) -> None:
        """Write the artifacts added outside any step under ``_experiment/``; forget the replicate."""
        written = self._written.pop(id(ctx), {})
        if not ctx.artifacts:
            return
        try:
            self._write(experiment, ctx, OUTSIDE_STEPS, written)
        except (ConfigurationError, OSError) as exc:  # after the replicate: it cannot fail any more
            message = (
                f"ArtifactPlugin: experiment {experiment.name!r}, {ctx.condition} replicate {ctx.replicate}: "
                f"an artifact added outside a step was not written: {exc}"
            )
            warnings.warn(message, CrystallizeWarning, stacklevel=2)

    def _write(self, experiment: Experiment, ctx: FrozenContext, directory: str, written: dict[str, object]) -> None:
        """Write the artifacts of ``ctx`` not yet written as they are now, under ``directory``."""
        pending = [(name, blob) for name, blob in ctx.artifacts.items() if written.get(name) is not blob]
        if not pending:
            return
        step_dir = self.run_dir(experiment) / _segment(ctx.condition) / f"replicate_{ctx.replicate}" / directory
        written.update(pending)  # first: what fails here is not tried again after the replicate
        for name, blob in pending:
            target = self._target(step_dir, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(blob, bytes):
                target.write_bytes(blob)
            else:
                target.write_text(blob, encoding="utf-8")

    @hookimpl
    def crystallize_run_after(self, experiment: Experiment, result: ExperimentResult) -> None:
        """Write ``metadata.json`` into the run's version directory."""
        run_dir = self._run_dirs.pop(experiment.name, None)
        if run_dir is None:
            return
        provenance = result.provenance
        metadata = {
            "experiment": experiment.name,
            "version": run_dir.name,
            "replicates": experiment.replicates,
            "conditions": list(experiment.condition_names),
            "master_seed": experiment.seed,
            "started_at": provenance.started_at,
            "duration_s": provenance.duration_s,
            "failed_replicates": len(result.errors),
            "passed": result.passed,
        }
        (run_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")

    @staticmethod
    def _target(step_dir: Path, name: str) -> Path:
        check_artifact_name(name)
        target = step_dir / name
        resolved_dir = step_dir.resolve()
        if not target.resolve().is_relative_to(resolved_dir) or target.resolve() == resolved_dir:
            msg = (
                f"artifact name {name!r} would be written outside its step directory "
                f"{str(step_dir)!r}: use a plain relative name such as 'model.json'"
            )
            raise ConfigurationError(msg)
        return target
