"""Handing an upstream experiment's result to a downstream one on another pytest-xdist worker.

Under pytest-xdist the two experiments of a chain may run on different
workers (``--dist load``, the default of ``-n``, spreads them). The worker
that ran an upstream with downstream experiments publishes its result here
(JSON, and each replicate's artifacts as plain files: nothing is unpickled);
a downstream whose upstream did not run in its own process waits until the
result is published, then reads it.

It never deadlocks: the upstream comes before its downstreams in the item
order and each worker runs its items in that order, so the smallest waiting
item's upstream is running or queued behind one that is not waiting. It
never waits on a dead worker: the publishing worker writes its pid when the
upstream starts, and a waiting downstream that finds that process gone
gives up, naming the upstream. A published directory appears at once (a
rename), so a half-written result is never read.

The directory is the run's base temporary directory (every worker's base is
inside it), so it is shared by the workers of one machine and removed by
pytest's ordinary retention of temporary directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from pytest_crystallize.errors import ChainError

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["POLL_SECONDS", "publish", "published", "started"]

#: Seconds between two looks for a result being published.
POLL_SECONDS: Final = 0.05
_STATUS: Final = "status.json"
_RESULT: Final = "result.json"
_ARTIFACTS: Final = "artifacts.json"


def _slot_dir(root: Path, nodeid: str) -> Path:
    return root / hashlib.sha256(nodeid.encode()).hexdigest()[:20]


def started(root: Path, nodeid: str) -> None:
    """Say that this process runs the upstream ``nodeid`` now (its pid, for waiting downstreams)."""
    root.mkdir(parents=True, exist_ok=True)
    _slot_dir(root, nodeid).with_suffix(".pid").write_text(str(os.getpid()), encoding="utf-8")


def publish(root: Path, nodeid: str, result: ExperimentResult | None, reason: str) -> None:
    """Publish the upstream ``nodeid``'s result (or, when None, ``reason`` it has none), at once."""
    target = _slot_dir(root, nodeid)
    if target.exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    status = {"nodeid": nodeid, "ok": result is not None, "reason": reason}
    if result is not None:
        result.to_json(staging / _RESULT)
        manifest = []
        for index, ((condition, replicate), kept) in enumerate((result.artifacts or {}).items()):
            for number, (name, blob) in enumerate(kept.items()):
                file = f"{index}-{number}"
                data = blob.encode() if isinstance(blob, str) else blob
                (staging / file).write_bytes(data)
                manifest.append({"condition": condition, "replicate": replicate, "name": name,
                                 "text": isinstance(blob, str), "file": file})
        kept_any = result.artifacts is not None
        (staging / _ARTIFACTS).write_text(json.dumps({"kept": kept_any, "files": manifest}), encoding="utf-8")
    (staging / _STATUS).write_text(json.dumps(status), encoding="utf-8")
    try:
        staging.rename(target)
    except OSError:  # published meanwhile by another process: theirs stands
        shutil.rmtree(staging, ignore_errors=True)


def published(root: Path, nodeid: str, downstream: str) -> ExperimentResult:
    """Wait for the upstream ``nodeid``'s result, then return it; ChainError if it has none or its worker died."""
    target = _slot_dir(root, nodeid)
    pid_file = target.with_suffix(".pid")
    while not (target / _STATUS).is_file():
        if _dead(pid_file) and not (target / _STATUS).is_file():
            msg = (
                f"experiment {downstream!r} takes outputs of its upstream {nodeid!r}, but the pytest-xdist "
                f"worker running it stopped before it finished"
            )
            raise ChainError(msg)
        time.sleep(POLL_SECONDS)
    status = json.loads((target / _STATUS).read_text(encoding="utf-8"))
    if not status.get("ok"):
        msg = (
            f"experiment {downstream!r} takes outputs of its upstream {nodeid!r}, which has no result: "
            f"{status.get('reason')}"
        )
        raise ChainError(msg)
    from pytest_crystallize.core.results import ExperimentResult

    result = ExperimentResult.from_json(target / _RESULT)
    manifest = json.loads((target / _ARTIFACTS).read_text(encoding="utf-8"))
    if not manifest["kept"]:
        return result
    artifacts: dict[tuple[str, int], dict[str, bytes | str]] = {}
    for entry in manifest["files"]:
        data = (target / entry["file"]).read_bytes()
        slot = artifacts.setdefault((entry["condition"], entry["replicate"]), {})
        slot[entry["name"]] = data.decode() if entry["text"] else data
    frozen = MappingProxyType({slot: MappingProxyType(kept) for slot, kept in artifacts.items()})
    return replace(result, artifacts=frozen)


def _dead(pid_file: Path) -> bool:
    """True when ``pid_file`` names a process that is gone (False while it is unknown or alive)."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive but not ours (PermissionError), or a platform that cannot tell
        return False
    return False
