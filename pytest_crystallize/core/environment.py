"""Where a run was made: the git commit, branch and dirty flag, and the machine.

``git`` runs as a subprocess with a timeout; without git, outside a
repository, or when git hangs, the run simply has no git information.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["GitInfo", "git_info", "machine_info"]

#: Seconds each git command may take before it is abandoned.
GIT_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class GitInfo:
    """The commit a run was made from; ``dirty`` when tracked files had changes."""

    commit: str
    branch: str | None
    dirty: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        return {"commit": self.commit, "branch": self.branch, "dirty": self.dirty}

    @classmethod
    def from_dict(cls, data: Any) -> GitInfo | None:
        """Rebuild from :meth:`to_dict` output; ``None`` stays ``None``."""
        if data is None:
            return None
        return cls(commit=str(data["commit"]), branch=data.get("branch"), dirty=bool(data["dirty"]))

    @property
    def short(self) -> str:
        """``abc1234`` or ``abc1234+dirty``."""
        return self.commit[:7] + ("+dirty" if self.dirty else "")


def _git(directory: Path, *args: str) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock (and so
    # never races with the user's own git commands).
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, timeout=GIT_TIMEOUT,
            env=env, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(directory: str | Path) -> GitInfo | None:
    """The git commit, branch and dirty flag of ``directory``, or ``None`` outside git."""
    directory = Path(directory)
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, branch=None if branch in (None, "HEAD") else branch, dirty=bool(status))


def machine_info() -> dict[str, Any]:
    """Host name, operating system, CPU and Python of this machine."""
    return {
        "node": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python_implementation": platform.python_implementation(),
        "python": sys.version.split()[0],
    }
