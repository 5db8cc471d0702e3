"""Default values of options, each defined once.

A leaf module like :mod:`~pytest_crystallize.core.vocabulary`: the pytest
options show these defaults in ``--help`` without loading the engine.
"""

from __future__ import annotations

from typing import Final

from pytest_crystallize.core.vocabulary import Correction, Spending

__all__ = [
    "CACHE_DIR",
    "DEFAULT_ALPHA",
    "DEFAULT_BASELINE",
    "DEFAULT_ARTIFACTS_DIR",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CORRECTION",
    "DEFAULT_LOOKS",
    "DEFAULT_REPLICATES",
    "DEFAULT_SEED",
    "DEFAULT_SPENDING",
    "DEFAULT_STORAGE",
    "LATEST",
    "MAX_REPLICATES",
    "TARGET_POWER",
]

#: The master seed used when an experiment names none. Fixed, so that two runs
#: of the same experiment give the same numbers; it is recorded in results.
DEFAULT_SEED: Final = 20_241_123
DEFAULT_REPLICATES: Final = 30
DEFAULT_ALPHA: Final = 0.05
DEFAULT_CORRECTION: Final[Correction] = "holm"
DEFAULT_LOOKS: Final = 5
DEFAULT_SPENDING: Final[Spending] = "obrien_fleming"
#: The store of saved runs, relative to the rootdir.
DEFAULT_STORAGE: Final = ".crystallize"
#: The step cache's directory inside the store, and its size limit (least recently used entries go first).
CACHE_DIR: Final = "cache"
DEFAULT_CACHE_SIZE: Final = "2GiB"
#: ArtifactPlugin's root, relative to the rootdir.
DEFAULT_ARTIFACTS_DIR: Final = "crystallize_artifacts"
#: The run name the gate compares with when no reference is given: its newest run.
DEFAULT_BASELINE: Final = "main"
#: The reference that means "the newest saved run".
LATEST: Final = "latest"
#: The power a planned experiment should reach at its ``mde``; below it, LowPowerWarning.
TARGET_POWER: Final = 0.8
#: The most replicates per condition an experiment may ask for. Past it a run
#: is no machine's work: at the engine's ~2.5 us per replicate-step and ~100
#: bytes per recorded value, 10 million replicates of two conditions with one
#: metric already take a minute and 2 GB; a typo such as ``10**15`` would run
#: for years, silently.
MAX_REPLICATES: Final = 10_000_000
