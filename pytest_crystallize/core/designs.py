"""Resampling designs: replicates that are folds or splits of one data set.

``design=cv(k=10, repeats=10)`` declares that the replicates are the folds
of repeated k-fold cross-validation: there are ``k x repeats`` of them, and
replicate ``r`` is fold ``r % k`` of repeat ``r // k``. ``design=holdout(
test_size=0.3)`` declares that each replicate is one random train/test
split. Either way the replicates share training data, so they are not
independent and the verdicts use a corrected test
(:func:`~pytest_crystallize.core.stats.compare_resampled`).

``ctx.folds(n_samples)`` gives the replicate's ``(train_indices,
test_indices)``. The shuffle of a repeat (or the split of a holdout
replicate) is seeded from the experiment's master seed alone, never from
the condition, so every condition sees the very same folds and the
comparison stays paired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CrossValidation", "Design", "Holdout", "cv", "design_problem", "holdout", "replicate_split"]

#: Spawn-key tag of the fold shuffles: keeps them apart from the replicate seeds' keys ``(replicate,)``.
_FOLD_STREAM: Final = 0x43_56_46_4F  # "CVFO"


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Repeated k-fold cross-validation: ``k x repeats`` replicates, one per fold."""

    k: int = 10
    repeats: int = 10

    @property
    def replicates(self) -> int:
        """The number of replicates the design runs: ``k x repeats``."""
        return self.k * self.repeats

    @property
    def test_train_ratio(self) -> float:
        """``n_test / n_train`` of one fold: ``1 / (k - 1)``."""
        return 1.0 / (self.k - 1)

    @property
    def test(self) -> str:
        """The corrected test its verdicts use."""
        return "corrected_repeated_kfold_t"

    def reason(self, resamples: int) -> str:
        """Why the verdicts use the corrected test, for the verdict's test choice."""
        return (
            f"{self}: folds share training data, so the paired t would claim too much; "
            f"Bouckaert & Frank's corrected repeated k-fold t, variance x (1/{resamples} + 1/{self.k - 1}), "
            f"df {resamples - 1}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data for verdict details."""
        return {"design": "cv", "k": self.k, "repeats": self.repeats}

    def __str__(self) -> str:
        return f"cv(k={self.k}, repeats={self.repeats})"


@dataclass(frozen=True, slots=True)
class Holdout:
    """Repeated random train/test splits (random subsampling), ``test_size`` of the data held out."""

    test_size: float = 0.3

    @property
    def test_train_ratio(self) -> float:
        """``n_test / n_train`` of one split."""
        return self.test_size / (1.0 - self.test_size)

    @property
    def test(self) -> str:
        """The corrected test its verdicts use."""
        return "corrected_resampled_t"

    def reason(self, resamples: int) -> str:
        """Why the verdicts use the corrected test, for the verdict's test choice."""
        return (
            f"{self}: splits share training data, so the paired t would claim too much; "
            f"Nadeau & Bengio's corrected resampled t, variance x (1/{resamples} + "
            f"{self.test_train_ratio:.4g}), df {resamples - 1}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data for verdict details."""
        return {"design": "holdout", "test_size": self.test_size}

    def __str__(self) -> str:
        return f"holdout(test_size={self.test_size:g})"


#: A declared resampling design.
Design = CrossValidation | Holdout


def cv(k: int = 10, repeats: int = 10) -> CrossValidation:
    """Declare repeated k-fold cross-validation: ``k x repeats`` replicates, replicate ``r`` = fold ``r % k``.

    Use it as ``@pytest.mark.experiment(design=cv(k=10, repeats=10))`` or
    ``run_experiment(..., design=cv(...))``, and take each replicate's
    indices from ``ctx.folds(n_samples)``.
    """
    for name, value, minimum in (("k", k, 2), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            msg = f"cv({name}=...) must be an integer >= {minimum}, got {value!r}"
            raise ConfigurationError(msg)
    return CrossValidation(k, repeats)


def holdout(test_size: float = 0.3) -> Holdout:
    """Declare repeated random train/test splits holding out ``test_size`` (a fraction) of the data.

    The number of splits is the experiment's ``replicates``; ``ctx.folds(n)``
    gives replicate ``r``'s split. Declare it also when your own code draws
    the splits (the fraction must then be the one it holds out): the
    verdicts need it to correct for the overlap.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        msg = f"holdout(test_size=...) must be a fraction strictly between 0 and 1, got {test_size!r}"
        raise ConfigurationError(msg)
    return Holdout(float(test_size))


def design_problem(design: object, options: Mapping[str, Any]) -> str:
    """What is wrong with ``design`` given the experiment's other ``options``, or ``""``."""
    if not isinstance(design, (CrossValidation, Holdout)):
        return f"design must be made with cv(k=..., repeats=...) or holdout(test_size=...), got {design!r:.60}"
    if options.get("replicates") in ("auto", "anytime"):
        return (f"design={design} fixes which replicates run, so it cannot be sequential: "
                f"drop replicates={options['replicates']!r}")
    for h in options.get("hypotheses", ()):
        label = getattr(h, "label", repr(h))
        if getattr(h, "covariate", None) is not None:
            return (
                f"hypothesis {label!r}: covariate adjustment is not available with design={design}; "
                f"drop covariate= or the design"
            )
        test = getattr(h, "test", "auto")
        if isinstance(test, str) and test not in ("auto", design.test):
            return (
                f"hypothesis {label!r}: test={test!r} treats the replicates as independent, but under "
                f"design={design} they share training data; use test='auto' (the {design.test})"
            )
    return ""


def _rng(master_seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(master_seed, spawn_key=(_FOLD_STREAM, stream)))


def replicate_split(
    design: Design | None, n_samples: int, replicate: int, master_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, test_indices)`` of ``replicate``, each sorted, from ``n_samples`` items.

    cv: repeat ``q = replicate // k`` shuffles ``range(n_samples)`` with a
    generator seeded by ``(master_seed, q)`` and cuts it into ``k`` folds
    (the first ``n_samples % k`` one item larger, as scikit-learn's
    ``KFold``); the replicate tests on fold ``replicate % k``. holdout: the
    replicate's own shuffle, its first ``ceil(test_size * n_samples)`` items
    held out.

    Raises:
        ConfigurationError: no design, or ``n_samples`` too small to split.

    """
    if design is None:
        msg = (
            "ctx.folds() needs a resampling design: declare design=cv(k=..., repeats=...) or "
            "design=holdout(test_size=...) on the experiment"
        )
        raise ConfigurationError(msg)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        msg = f"ctx.folds(n_samples) takes the number of samples to split (an integer), got {n_samples!r:.60}"
        raise ConfigurationError(msg)
    n = int(n_samples)
    if isinstance(design, CrossValidation):
        if n < design.k:
            msg = f"ctx.folds({n}): {design} needs at least k={design.k} samples to make {design.k} folds"
            raise ConfigurationError(msg)
        repeat, fold = divmod(replicate, design.k)
        order = _rng(master_seed, repeat).permutation(n)
        sizes = np.full(design.k, n // design.k)
        sizes[: n % design.k] += 1
        stop = int(sizes[: fold + 1].sum())
        held_out = order[stop - int(sizes[fold]) : stop]
    else:
        n_test = math.ceil(design.test_size * n)
        if n < 2 or n_test >= n:
            msg = f"ctx.folds({n}): {design} leaves no training samples; split more samples"
            raise ConfigurationError(msg)
        held_out = _rng(master_seed, replicate).permutation(n)[:n_test]
    mask = np.zeros(n, dtype=bool)
    mask[held_out] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
