"""Exceptions raised by pytest-crystallize.

Every error the package raises on purpose derives from one root, and most also
derive from the builtin a caller would naturally catch::

    CrystallizeError
    ├── ContextMutationError        (+ KeyError)    writing an existing context key
    ├── ConfigurationError          (+ ValueError)  a bad experiment definition
    │   ├── ChainError              (+ LookupError) an upstream experiment missing, in a cycle or lacking a value
    │   ├── DataSourceError         (+ LookupError) unknown or unusable datasource
    │   ├── HypothesisError                         a bad hypothesis definition
    │   └── TreatmentError                          a bad or duplicate treatment
    ├── MetricError                 (+ ValueError)  a non-numeric or missing metric
    ├── StatisticsError             (+ ValueError)  data a statistical test cannot use
    ├── ResultsError                (+ ValueError)  a results file or store that cannot be read or used
    └── CacheError                  (+ ValueError)  a cached step whose key or entry cannot be made
        └── UndigestableError                       a value the cache cannot digest into a key

    CrystallizeWarning              (UserWarning)
    ├── LowPowerWarning                             too few replicates for the effect that matters
    └── SharedDataWarning                           replicates share data without a declared design

Messages say what failed, where (names quoted with ``!r``), why, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ChainError",
    "ConfigurationError",
    "ContextMutationError",
    "CrystallizeError",
    "CrystallizeWarning",
    "DataSourceError",
    "HypothesisError",
    "LowPowerWarning",
    "MetricError",
    "ResultsError",
    "SharedDataWarning",
    "StatisticsError",
    "TreatmentError",
    "UndigestableError",
]


class CrystallizeError(Exception):
    """Root of every error pytest-crystallize raises on purpose."""


class ContextMutationError(CrystallizeError, KeyError):
    """An existing key of a :class:`FrozenContext` was assigned to.

    The offending key is kept on :attr:`key`.
    """

    def __init__(self, key: str, message: str | None = None) -> None:
        self.key = key
        super().__init__(
            message
            or f"context key {key!r} already exists and the context is frozen: "
            f"use ctx.add({key!r}, value) for a new key, or "
            f"ctx.override({key}=value) to replace it on purpose"
        )

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])


class ConfigurationError(CrystallizeError, ValueError):
    """An experiment, treatment, hypothesis or option is defined wrongly."""


class ChainError(ConfigurationError, LookupError):
    """An upstream experiment is missing or in a cycle, or lacks what a downstream one takes from it."""


class DataSourceError(ConfigurationError, LookupError):
    """A datasource is unknown or cannot be used."""


class HypothesisError(ConfigurationError):
    """A hypothesis is defined wrongly (direction, test, alpha, metric)."""


class TreatmentError(ConfigurationError):
    """A treatment is defined wrongly or its name clashes."""


class MetricError(CrystallizeError, ValueError):
    """A metric value is not a number, or a metric a hypothesis needs is missing."""


class StatisticsError(CrystallizeError, ValueError):
    """The data cannot be analysed by the requested statistical test.

    ``side`` (``"baseline"`` or ``"treatment"``) and ``positions`` (indices of
    the offending values) are set when the problem is in specific values.
    """

    def __init__(
        self,
        message: str,
        *,
        side: str | None = None,
        positions: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message)
        self.side = side
        self.positions = positions


class ResultsError(CrystallizeError, ValueError):
    """A saved result cannot be read (missing, corrupt, of an unknown format), or its store cannot be used."""


class CacheError(CrystallizeError, ValueError):
    """A cached step's key cannot be made (an input it cannot digest) or its cache cannot be used."""


class UndigestableError(CacheError):
    """A value has no content digest: :attr:`path` says where it was (``data['model']``), :attr:`type_name` what."""

    def __init__(self, path: str, type_name: str) -> None:
        self.path = path
        self.type_name = type_name
        super().__init__(f"{path}, of type {type_name}, has no content digest")


class CrystallizeWarning(UserWarning):
    """Root of the warnings pytest-crystallize emits."""


class LowPowerWarning(CrystallizeWarning):
    """A hypothesis with ``mde=`` has less than 80% power at that effect.

    The message says the power reached and how many replicates would give 80%.
    """


class SharedDataWarning(CrystallizeWarning):
    """Several replicates got identical data from a datasource, and the experiment declares no design.

    Replicates that are folds or resamples of one data set are not
    independent; the message names the experiment, the datasource and the
    design to declare (``design=cv(...)`` or ``design=holdout(...)``).
    """
