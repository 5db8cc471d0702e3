"""The catalogue of built-in tests, users' own tests, and the ``auto`` choice."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from pytest_crystallize.core.vocabulary import MARGIN_DIRECTIONS
from pytest_crystallize.errors import StatisticsError

from . import _binary, _continuous, _margins, _rank, _resampling, _skewness
from ._inputs import Samples

__all__ = ["SCREENED", "TESTS", "TestSpec", "UserTest", "builtin", "choose", "resolve", "unpaired"]

Outcome = tuple[float, float]
"""A test's (statistic, p-value)."""

Runner = Callable[[Samples, float, str, int], Outcome]
"""``run(samples, null_difference, alternative, seed)``."""
Interval = Callable[[Samples, float, int], tuple[float, float]]
"""``interval(samples, confidence, seed)``."""
UserTest = Callable[[np.ndarray, np.ndarray, str], object]


@dataclass(frozen=True, slots=True)
class TestSpec:
    """How to run one test and what it needs.

    ``pairing`` is ``"never"`` (ignores pairing), ``"always"`` (needs paired
    replicates) or ``"optional"`` (pairs when the samples are paired).
    ``margins`` says whether it can test a non-zero null difference
    (no_worse, equivalent, superiority margins); ``family`` (``"t"``,
    ``"normal"`` or ``"binary"``) picks the power calculation.
    """

    name: str
    run: Runner
    interval: Interval
    pairing: str
    binary: bool
    min_n: int
    margins: bool
    family: str
    user: bool = False


def unpaired(samples: Samples) -> Samples:
    """Return the same samples with their pairing forgotten."""
    if not samples.paired:
        return samples
    nan = float("nan")
    return replace(samples, differences=None, mean_diff=nan, var_diff=nan)


def _t_interval(samples: Samples, confidence: float, seed: int) -> tuple[float, float]:
    del seed  # deterministic
    if samples.paired:
        return _continuous.paired_interval(samples, confidence)
    return _continuous.welch_interval(samples, confidence)


def _student_interval(samples: Samples, confidence: float, seed: int) -> tuple[float, float]:
    del seed  # deterministic
    return _continuous.student_interval(samples, confidence)


def _risk_interval(samples: Samples, confidence: float, seed: int) -> tuple[float, float]:
    del seed  # deterministic
    c = _binary.counts(samples)
    if samples.paired:
        return _binary.paired_newcombe_interval(c, confidence)
    return _binary.newcombe_interval(c, confidence)


def _shifting(fn: Callable[[Samples, str], Outcome]) -> Runner:
    """Carry the null difference into a test of 'no difference' by a location shift."""

    def run(samples: Samples, delta: float, alternative: str, seed: int) -> Outcome:
        del seed  # deterministic test
        return fn(samples.shifted(delta), alternative)

    return run


def _shifting_seeded(fn: Callable[[Samples, str, int], Outcome]) -> Runner:
    def run(samples: Samples, delta: float, alternative: str, seed: int) -> Outcome:
        return fn(samples.shifted(delta), alternative, seed)

    return run


def _no_margin(fn: Callable[[Samples, str], Outcome]) -> Runner:
    def run(samples: Samples, delta: float, alternative: str, seed: int) -> Outcome:
        del delta, seed  # compare() refuses margins for these tests
        return fn(samples, alternative)

    return run


def _score(fn: Callable[[Samples, float, str], Outcome]) -> Runner:
    def run(samples: Samples, delta: float, alternative: str, seed: int) -> Outcome:
        del seed  # deterministic test
        return fn(samples, delta, alternative)

    return run


def _bootstrap_interval(samples: Samples, confidence: float, seed: int) -> tuple[float, float]:
    return _resampling.bootstrap_interval(samples, confidence, seed)


def _builtins() -> dict[str, TestSpec]:
    t, risk = _t_interval, _risk_interval
    specs = [
        TestSpec("welch_t", _shifting(_continuous.welch_t), t, "never", False, 2, True, "t"),
        TestSpec(
            "student_t", _shifting(_continuous.student_t), _student_interval, "never", False, 2, True, "t"
        ),
        TestSpec("paired_t", _shifting(_continuous.paired_t), t, "always", False, 2, True, "t"),
        TestSpec(
            "skew_corrected_t", _shifting(_skewness.corrected_t), t, "optional", False, 2, True, "t"
        ),
        TestSpec("mann_whitney", _shifting(_rank.mann_whitney), t, "never", False, 2, True, "normal"),
        TestSpec("wilcoxon", _shifting(_rank.wilcoxon), t, "always", False, 2, True, "normal"),
        TestSpec(
            "permutation", _shifting_seeded(_resampling.permutation), t, "optional", False, 2, True, "normal"
        ),
        TestSpec(
            "bootstrap",
            _shifting_seeded(_resampling.bootstrap),
            _bootstrap_interval,
            "optional",
            False,
            2,
            True,
            "normal",
        ),
        TestSpec("fisher_exact", _no_margin(_binary.fisher_exact), risk, "never", True, 1, False, "binary"),
        TestSpec("boschloo", _no_margin(_binary.boschloo), risk, "never", True, 1, False, "binary"),
        TestSpec("chi_square", _no_margin(_binary.chi_square), risk, "never", True, 1, False, "binary"),
        TestSpec("mcnemar", _no_margin(_binary.mcnemar), risk, "always", True, 1, False, "binary"),
        TestSpec(
            "farrington_manning", _score(_margins.farrington_manning), risk, "never", True, 1, True, "binary"
        ),
        TestSpec("tango", _score(_margins.tango), risk, "always", True, 1, True, "binary"),
    ]
    return {spec.name: spec for spec in specs}


_BUILTINS = _builtins()
TESTS: tuple[str, ...] = (*sorted(_BUILTINS), "auto")
#: The tests ``auto`` screens for skewness before trusting them.
SCREENED: tuple[str, ...] = ("paired_t", "welch_t")


def builtin(name: str) -> TestSpec:
    """The spec of the built-in test ``name`` (a KeyError for any other name)."""
    return _BUILTINS[name]



def choose(samples: Samples, direction: str, *, margin: bool = False) -> tuple[TestSpec, str]:
    """Return the test ``auto`` picks for these samples, and a one-line reason."""
    binary = _binary.is_binary(samples.baseline) and _binary.is_binary(samples.treatment)
    if binary and (margin or direction in MARGIN_DIRECTIONS):
        if samples.paired:
            reason = "0/1 outcomes from paired replicates against a margin: Tango's score test"
            return _BUILTINS["tango"], reason
        reason = "0/1 outcomes from independent samples against a margin: Farrington-Manning score test"
        return _BUILTINS["farrington_manning"], reason
    if binary:
        if samples.paired:
            reason = "0/1 outcomes from paired replicates: exact McNemar test on the discordant pairs"
            return _BUILTINS["mcnemar"], reason
        return _BUILTINS["fisher_exact"], "0/1 outcomes from independent samples: Fisher's exact test"
    screened = "; screened for skewness (see the note when it is found)"
    if samples.paired:
        reason = "paired replicates (common random numbers): paired t-test on the differences" + screened
        return _BUILTINS["paired_t"], reason
    return _BUILTINS["welch_t"], "independent samples: Welch's t-test (no equal-variance assumption)" + screened


def resolve(
    test: str | UserTest, samples: Samples, direction: str, *, margin: bool = False
) -> tuple[TestSpec, str]:
    """Return the spec for ``test`` (a name, ``"auto"`` or a callable) and why it runs.

    Raises:
        StatisticsError: an unknown name, or a test that needs paired
            replicates given unpaired samples.

    """
    if callable(test):
        return _user_spec(test), "user-supplied test"
    if test == "auto":
        return choose(samples, direction, margin=margin)
    spec = _BUILTINS.get(test)
    if spec is None:
        msg = f"unknown test {test!r}: use one of {TESTS}, or pass a callable"
        raise StatisticsError(msg)
    if spec.pairing == "always" and not samples.paired:
        msg = (
            f"test {test!r} needs paired replicates but the samples are unpaired: "
            "pass paired=True (same replicate seeds in both conditions) or choose an "
            "unpaired test such as 'welch_t', 'mann_whitney' or 'fisher_exact'"
        )
        raise StatisticsError(msg)
    return spec, f"requested test {test!r}"


def _user_spec(fn: UserTest) -> TestSpec:
    name = str(getattr(fn, "__name__", type(fn).__name__))

    def run(samples: Samples, delta: float, alternative: str, seed: int) -> Outcome:
        del seed  # a user's test seeds itself
        shifted = samples.shifted(delta)
        return _read_user_result(name, fn(shifted.baseline, shifted.treatment, alternative))

    return TestSpec(name, run, _t_interval, "optional", False, 2, True, "normal", user=True)


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]  # anything float() accepts
    except (TypeError, ValueError):
        return float("nan")


def _read_user_result(name: str, result: object) -> Outcome:
    statistic: object = None
    if isinstance(result, Mapping):
        p_value = next((result[k] for k in ("pvalue", "p_value", "p") if k in result), None)
        statistic = result.get("statistic")
    elif isinstance(result, (int, float, np.floating, np.integer)):
        p_value = result
    else:
        p_value = getattr(result, "pvalue", getattr(result, "p_value", None))
        statistic = getattr(result, "statistic", None)
    p = _as_float(p_value)
    if not 0.0 <= p <= 1.0:
        msg = (
            f"user test {name!r} returned {result!r}: expected a p-value in [0, 1], "
            "a mapping with 'pvalue', or an object with a .pvalue attribute "
            "(like scipy's results)"
        )
        raise StatisticsError(msg)
    return _as_float(statistic), p
