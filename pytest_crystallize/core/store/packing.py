"""One experiment's run to save, packed as text to cross a process boundary (pytest-xdist).

A worker that runs an experiment hands its result to the controller, which
saves the run, through the call report; a report's attributes must be plain
JSON-able data. The result goes as the Parquet file the store writes anyway,
base64-encoded inside a small JSON object with the definition, fingerprint and
gate specs: a few bytes a value, columnar both ways, never one JSON number a
value. The controller reads the result back (to check it and to record what
it holds) and saves the very file the worker wrote, without encoding it again.
A run in one process hands the result object over as it is and packs nothing.
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any, Final

from pytest_crystallize.core.results import ExperimentResult
from pytest_crystallize.core.store.records import ExperimentRun
from pytest_crystallize.errors import ResultsError

__all__ = ["pack_experiment", "unpack_experiment"]

PACKED_FORMAT: Final = "pytest-crystallize/packed-experiment"
_FILE: Final = "result.parquet"


def pack_experiment(run: ExperimentRun) -> str:
    """``run`` as JSON text: its definition, fingerprint and gate specs, and its result as Parquet (base64)."""
    with tempfile.TemporaryDirectory(prefix="crystallize-pack-") as directory:
        path = Path(directory) / _FILE
        run.result.to_parquet(path)
        parquet = path.read_bytes()
    document = {
        "format": PACKED_FORMAT, "nodeid": run.nodeid, "definition": dict(run.definition),
        "fingerprint": run.fingerprint, "gate": {metric: dict(spec) for metric, spec in run.gate.items()},
        "result": base64.b64encode(parquet).decode("ascii"),
    }
    return json.dumps(document, allow_nan=False)


def unpack_experiment(text: str, source: str) -> ExperimentRun:
    """The run :func:`pack_experiment` packed; ResultsError naming ``source`` if it is not one."""
    try:
        document: Any = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != PACKED_FORMAT:
            msg = "not a packed experiment of this version of pytest-crystallize"
            raise ValueError(msg)
        parquet = base64.b64decode(document["result"], validate=True)
        with tempfile.TemporaryDirectory(prefix="crystallize-unpack-") as directory:
            path = Path(directory) / _FILE
            path.write_bytes(parquet)
            result = ExperimentResult.from_parquet(path)
        return ExperimentRun(
            nodeid=document["nodeid"], result=result, definition=document["definition"],
            fingerprint=document["fingerprint"], gate=document["gate"], parquet=parquet,
        )
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"{source}: the result a worker sent cannot be read ({exc})"
        raise ResultsError(msg) from None
