"""Replicates that share data without a declared design: detected, then warned about.

Cross-validation done by hand is the usual case: a datasource hands every
replicate the whole data set and the experiment picks fold ``replicate %
k`` itself. The folds' training sets overlap, the replicates are not
independent, and a paired t-test on them claims far too much. Without a
declared design (``design=cv(...)`` or ``holdout(...)``) the engine cannot
know; it can notice that a datasource handed several replicates identical
data.

:func:`data_digest` is the cheap content digest of a datasource's output
that the replicate runner takes for the baseline's replicates (only when
the experiment has hypotheses and no design): the numeric arrays in it
(numpy arrays, pandas objects, one or two levels inside tuples, lists,
mappings and objects' attributes), hashed whole up to 1 MiB and by an
even sample of their items beyond. Outputs without such an array (a
configuration object, a prompt) get no digest: they are not data.
:func:`shared_data_notes` turns the digests into one message per datasource
that repeated itself; :func:`warn_shared_data` issues them as
:class:`~pytest_crystallize.errors.SharedDataWarning` after the run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.attribution import warn_at
from pytest_crystallize.errors import SharedDataWarning

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["data_digest", "shared_data_notes", "warn_shared_data"]

#: Arrays smaller than this are parameters, not data.
_MIN_ITEMS: Final = 8
#: Arrays up to this size are hashed whole; larger ones by an even sample.
_WHOLE_BYTES: Final = 1 << 20
_SAMPLED_ITEMS: Final = 1 << 16
#: How many items of a container, and how deep, the digest looks.
_BREADTH: Final = 32
_DEPTH: Final = 2


def _numeric(value: Any) -> np.ndarray | None:
    """``value`` as a numeric array worth digesting, or None."""
    if isinstance(value, np.ndarray):
        array = value
    elif hasattr(value, "to_numpy") and hasattr(value, "shape") and hasattr(value, "dtypes"):  # pandas
        try:
            array = np.asarray(value.to_numpy())
        except (TypeError, ValueError):
            return None
    else:
        return None
    if array.dtype.kind not in "biufcmM" or array.size < _MIN_ITEMS:
        return None
    return array


def _arrays(value: Any, depth: int = 0) -> Iterator[np.ndarray]:
    array = _numeric(value)
    if array is not None:
        yield array
        return
    if depth >= _DEPTH or isinstance(value, (str, bytes)):
        return
    children: Iterable[Any]
    if isinstance(value, Mapping):
        children = list(value.values())[:_BREADTH]
    elif isinstance(value, (list, tuple)):
        children = value[:_BREADTH]
    elif hasattr(value, "__dict__") or hasattr(value, "__slots__"):
        names = list(getattr(value, "__dict__", {}))
        names += [n for n in getattr(type(value), "__slots__", ()) if isinstance(n, str)]
        children = [getattr(value, n, None) for n in names[:_BREADTH]]
    else:
        return
    for child in children:
        yield from _arrays(child, depth + 1)


def data_digest(value: Any) -> str | None:
    """A digest of the numeric arrays in ``value``, or None when it holds none (see the module docstring)."""
    digest = hashlib.blake2b(digest_size=16)
    found = False
    for array in _arrays(value):
        found = True
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        if array.nbytes <= _WHOLE_BYTES:
            digest.update(np.ascontiguousarray(array).tobytes())
        else:
            flat = array.reshape(-1)
            digest.update(np.ascontiguousarray(flat[:: max(1, flat.size // _SAMPLED_ITEMS)]).tobytes())
    return digest.hexdigest() if found else None


def shared_data_notes(experiment: Experiment, digests: Iterable[tuple[int, str, str]]) -> tuple[str, ...]:
    """One message per datasource that handed several replicates identical data.

    ``digests`` are ``(replicate, parameter, digest)`` of the baseline's
    replicates. Empty when the experiment declares a design or has no
    hypothesis (nothing is then claimed from the replicates).
    """
    if experiment.design is not None or not experiment.hypotheses:
        return ()
    by_parameter: dict[str, Counter[str]] = {}
    for _, parameter, digest in digests:
        by_parameter.setdefault(parameter, Counter())[digest] += 1
    notes = []
    for parameter, counts in by_parameter.items():
        repeated = sum(c for c in counts.values() if c > 1)
        if not repeated:
            continue
        total = sum(counts.values())
        notes.append(
            f"experiment {experiment.name!r}: datasource {parameter!r} handed identical data to {repeated} of "
            f"{total} replicates, so they are not independent samples and a paired test on them claims too "
            f"much. If the replicates are folds or resamples of these data, declare design=cv(k=..., "
            f"repeats=...) and take each replicate's indices from ctx.folds(n), or design=holdout("
            f"test_size=...), so the verdicts use a corrected test; if only the seed varies, the verdicts "
            f"speak for this one data set"
        )
    return tuple(notes)


def warn_shared_data(function: Any, result: ExperimentResult) -> None:
    """Issue a SharedDataWarning per note of ``result``, attributed to the experiment's own code."""
    for note in result.provenance.shared_data:
        warn_at(function, SharedDataWarning(note))
