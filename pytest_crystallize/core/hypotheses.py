"""Hypotheses (what an experiment claims) and verdicts (what the data said).

``@hypothesis(metric="accuracy", direction="maximize")`` stacked on an
experiment function attaches a claim to it; decorating a predicate
``def better(baseline, treatment) -> bool`` instead returns a hypothesis that
also requires the predicate to hold, for use in ``hypotheses=[...]``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.vocabulary import BETTER, HYPOTHESIS_DIRECTIONS, NAN_POLICIES
from pytest_crystallize.errors import HypothesisError

__all__ = ["HYPOTHESES_ATTRIBUTE", "Hypothesis", "Verdict", "attached_hypotheses", "hypothesis"]

#: Attribute of an experiment function holding the hypotheses stacked on it.
HYPOTHESES_ATTRIBUTE: Final = "__crystallize_hypotheses__"

_PREDICATE_PARAMETERS: Final = ("baseline", "treatment")


def _is_predicate(function: Callable[..., Any]) -> bool:
    try:
        names = tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return False
    return names == _PREDICATE_PARAMETERS


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """A claim about one metric, checked for every treatment against the baseline.

    ``direction`` is ``"maximize"``, ``"minimize"``, ``"two-sided"``,
    ``"no_worse"`` (non-inferiority within ``margin``) or ``"equivalent"``
    (within ``±margin``); ``better`` says which way is good for those two.
    ``"best"`` compares every condition, baseline included, and names the
    best one (or the ones that cannot be told from it); ``better`` says which
    way is good, ``margin`` how far from the best still counts as best.
    ``covariate`` names a metric each replicate records before the
    treatment acts; the comparison is then adjusted for it (Lin 2013).
    ``alpha=None`` takes the experiment's alpha. ``predicate(baseline,
    treatment)`` gets the two numpy arrays of values and must also return true.
    """

    metric: str
    direction: str = "two-sided"
    test: str | Callable[..., Any] = "auto"
    alpha: float | None = None
    predicate: Callable[[Any, Any], Any] | None = None
    name: str | None = None
    margin: float | str | None = None
    relative_margin: bool = False
    better: str = "higher"
    mde: float | None = None
    nan_policy: str = "raise"
    covariate: str | None = None

    def __post_init__(self) -> None:
        # margin="2%" reads as a relative margin of 0.02; a malformed one is
        # left as is for check() to report with the experiment's name.
        margin = self.margin
        if isinstance(margin, str) and margin.strip().endswith("%"):
            try:
                fraction = float(margin.strip()[:-1]) / 100
            except ValueError:
                return
            object.__setattr__(self, "margin", fraction)
            object.__setattr__(self, "relative_margin", True)

    @property
    def label(self) -> str:
        """A short name for reports: the given name, the predicate's, or metric+direction."""
        if self.name:
            return self.name
        if self.predicate is not None:
            return getattr(self.predicate, "__name__", self.metric)
        return f"{self.metric} {self.direction}"

    @property
    def test_name(self) -> str:
        """The test's name (a callable's ``__name__``)."""
        test = self.test
        return test if isinstance(test, str) else getattr(test, "__name__", "custom")

    def check(self, where: str) -> None:
        """Raise HypothesisError if this hypothesis is malformed; ``where`` names the experiment."""
        problem = next(self._problems(), None)
        if problem:
            msg = f"{where}: hypothesis {self.label!r}: {problem}"
            raise HypothesisError(msg)

    def _problems(self) -> Iterator[str]:
        """What is wrong with this hypothesis, most basic first."""
        from pytest_crystallize.core.stats import PROCEDURES, TESTS

        if not isinstance(self.metric, str) or not self.metric:
            yield f"metric must be a non-empty string, got {self.metric!r}"
        if self.direction not in HYPOTHESIS_DIRECTIONS:
            yield f"unknown direction {self.direction!r}; use one of {', '.join(HYPOTHESIS_DIRECTIONS)}"
        if isinstance(self.test, str) and self.test not in TESTS + PROCEDURES:
            yield f"unknown test {self.test!r}; use one of {', '.join(TESTS + PROCEDURES)} or a callable"
        elif self.test == "mcb" and self.direction != "best":
            yield "test 'mcb' (multiple comparisons with the best) needs direction='best'"
        elif self.test == "covariate_adjusted_t" and self.covariate is None:
            yield "test 'covariate_adjusted_t' needs covariate=, the metric to adjust for"
        if not isinstance(self.test, str) and not callable(self.test):
            yield f"test must be a name or a callable, got {self.test!r}"
        if self.alpha is not None and not _is_probability(self.alpha):
            yield f"alpha must be a number strictly between 0 and 1, got {self.alpha!r}"
        if self.direction in ("no_worse", "equivalent") and self.margin is None:
            yield f"direction {self.direction!r} needs margin=, the largest difference that does not matter"
        if self.margin is not None:
            yield from _margin_problems(self.margin, self.direction)
        if self.better not in BETTER:
            yield f"better must be 'higher' or 'lower', got {self.better!r}"
        if self.nan_policy not in NAN_POLICIES:
            yield f"nan_policy must be 'raise' or 'omit', got {self.nan_policy!r}"
        if self.mde is not None and not (_is_number(self.mde) and self.mde > 0):
            yield f"mde must be a positive number (the smallest effect worth detecting), got {self.mde!r}"
        if self.predicate is not None and not callable(self.predicate):
            yield f"predicate must be callable, got {self.predicate!r}"
        yield from _covariate_problems(self.covariate, self.metric)
        yield from _adjusted_test_problems(self)
        if self.direction == "best":
            yield from _best_problems(self)

    def __call__(self, function: Callable[..., Any]) -> Any:
        """Decorate a predicate (returns a new Hypothesis) or an experiment function.

        A function whose parameters are exactly ``(baseline, treatment)`` is a
        predicate; anything else is an experiment, which gets this hypothesis
        attached and is returned unchanged.
        """
        if _is_predicate(function):
            return replace(self, predicate=function, name=self.name or function.__name__)
        stacked: list[Hypothesis] = list(getattr(function, HYPOTHESES_ATTRIBUTE, ()))
        # Decorators apply bottom-up; insert at the front to keep source order.
        stacked.insert(0, self)
        try:
            setattr(function, HYPOTHESES_ATTRIBUTE, tuple(stacked))
        except AttributeError:
            msg = f"@hypothesis cannot decorate {function!r}: it does not accept attributes"
            raise HypothesisError(msg) from None
        return function


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _margin_problems(margin: object, direction: str) -> Iterator[str]:
    if not _is_number(margin) or margin < 0:  # type: ignore[operator]  # a number, checked first
        yield (
            f"margin must be a number >= 0 (in the metric's units) or a percentage of the "
            f"baseline mean such as '2%', got {margin!r}"
        )
    elif direction == "two-sided":
        yield "a margin has no meaning for direction 'two-sided': use 'equivalent' or 'no_worse', or drop it"
    elif direction == "equivalent" and margin == 0:
        yield "direction 'equivalent' needs a margin > 0"


def _covariate_problems(covariate: object, metric: str) -> Iterator[str]:
    if covariate is None:
        return
    if not isinstance(covariate, str) or not covariate:
        yield f"covariate must be the name of a metric (a non-empty string), got {covariate!r}"
    elif covariate == metric:
        yield f"covariate {covariate!r} is the metric itself: name a metric recorded before the treatment acts"


def _adjusted_test_problems(h: Hypothesis) -> Iterator[str]:
    if h.covariate is not None and h.test not in ("auto", "covariate_adjusted_t"):
        yield (
            f"covariate {h.covariate!r} is adjusted for by regression (test 'covariate_adjusted_t'); "
            f"use test='auto', not {h.test_name!r}"
        )


def _best_problems(h: Hypothesis) -> Iterator[str]:
    """What direction='best' cannot be combined with."""
    if isinstance(h.test, str) and h.test not in ("auto", "mcb"):
        yield (
            f"direction 'best' is decided by multiple comparisons with the best: use test='auto' "
            f"(or 'mcb'), not {h.test!r}"
        )
    elif not isinstance(h.test, str):
        yield "direction 'best' is decided by multiple comparisons with the best: a custom test cannot be used"
    if h.predicate is not None:
        yield "direction 'best' compares every condition at once: a (baseline, treatment) predicate does not apply"
    if h.covariate is not None:
        yield "direction 'best' cannot adjust for a covariate yet: drop covariate= or compare pairs"


def _is_probability(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1


def hypothesis(
    metric: str,
    direction: str = "two-sided",
    test: str | Callable[..., Any] = "auto",
    alpha: float | None = None,
    *,
    name: str | None = None,
    margin: float | str | None = None,
    relative_margin: bool = False,
    better: str = "higher",
    mde: float | None = None,
    nan_policy: str = "raise",
    covariate: str | None = None,
) -> Hypothesis:
    """Declare a hypothesis; use it as a decorator or in ``hypotheses=[...]``.

    ``margin`` is in the metric's units, or a percentage of the baseline mean
    written ``"2%"`` (the same as ``margin=0.02, relative_margin=True``).
    ``mde`` (the smallest effect worth detecting, in the metric's units) makes
    the verdict report the power reached and the replicates needed for 80%;
    below 80% a :class:`~pytest_crystallize.errors.LowPowerWarning` is issued.
    ``nan_policy="omit"`` drops non-finite values (pairwise when paired)
    instead of failing the verdict.

    ``direction="best"`` asks which condition is best (multiple comparisons
    with the best, Hsu 1996): it holds when one condition is identified as
    best, or within ``margin`` of the best, with ``1 - alpha`` simultaneous
    confidence. ``covariate="name"`` adjusts the comparison for a metric each
    replicate records before the treatment acts (CUPED; Lin 2013), and the
    verdict reports ``details["variance_reduction"]``.
    """
    return Hypothesis(
        metric=metric, direction=direction, test=test, alpha=alpha, name=name,
        margin=margin, relative_margin=relative_margin, better=better, mde=mde,
        nan_policy=nan_policy, covariate=covariate,
    )


def attached_hypotheses(function: Callable[..., Any]) -> tuple[Hypothesis, ...]:
    """Return the hypotheses stacked on ``function`` with ``@hypothesis``."""
    return tuple(getattr(function, HYPOTHESES_ATTRIBUTE, ()))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one hypothesis for one treatment against the baseline.

    ``holds`` is true when the (corrected) p-value is below ``alpha``, the
    observed difference points the claimed way and any predicate holds;
    ``reason`` says why in one line. ``details`` carries the full statistics
    (plain JSON values).
    """

    hypothesis: str
    metric: str
    treatment: str
    direction: str
    test: str
    n_baseline: int
    n_treatment: int
    mean_baseline: float
    mean_treatment: float
    difference: float
    p_value: float
    p_adjusted: float
    alpha: float
    holds: bool
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict (NaN becomes None)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["details"] = dict(self.details)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Rebuild a verdict from :meth:`to_dict` output."""
        values = dict(data)
        for key in ("mean_baseline", "mean_treatment", "difference", "p_value", "p_adjusted"):
            if values.get(key) is None:
                values[key] = math.nan
        return cls(**values)
