"""How an experiment spends its replicates: fixed, group-sequential (``"auto"``) or anytime-valid.

A fixed design runs ``replicates`` and tests once. ``replicates="auto"``
(:class:`SequentialDesign`) tests at planned looks against group-sequential
boundaries, with optional futility stops; ``replicates="anytime"``
(:class:`AnytimeDesign`) tests after every replicate with an e-process, and
its verdicts stay valid however the run stops. Both run up to
``max_replicates``. :func:`choose_design` checks their options for
:meth:`~pytest_crystallize.core.experiment.Experiment.define`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.defaults import DEFAULT_LOOKS, DEFAULT_SPENDING, TARGET_POWER
from pytest_crystallize.core.vocabulary import FUTILITY, SPENDING, Futility, Spending
from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.hypotheses import Hypothesis

__all__ = ["ANYTIME", "AUTO", "AnytimeDesign", "SequentialDesign", "check_anytime_hypotheses", "choose_design"]

#: ``replicates=AUTO`` asks for a group-sequential design.
AUTO: Final = "auto"
#: ``replicates=ANYTIME`` asks for anytime-valid monitoring after every replicate.
ANYTIME: Final = "anytime"


@dataclass(frozen=True, slots=True)
class SequentialDesign:
    """How a sequential experiment (``replicates="auto"``) looks at its data: ``looks`` and the spending function.

    The look-by-look engine is :class:`~pytest_crystallize.core.analysis.SequentialMonitor`.
    """

    looks: int = DEFAULT_LOOKS
    spending: Spending = DEFAULT_SPENDING
    #: Futility stops: ``"none"``, ``"non_binding"`` (``futility=True``) or ``"binding"``.
    futility: Futility = "none"
    #: The beta-spending function of the futility bounds.
    futility_spending: Spending = "hsd"
    #: The power ``max_replicates`` is taken to give at the design alternative; futility spends ``1 - power``.
    power: float = TARGET_POWER
    #: Adaptive sweep: after each look only the treatments with an undecided hypothesis get more replicates.
    adaptive: bool = False


@dataclass(frozen=True, slots=True)
class AnytimeDesign:
    """How an anytime experiment (``replicates="anytime"``) tests: after every replicate, with an e-process.

    ``scale`` is the prior standard deviation of the standardized effect
    (mean difference / its SD) in the t-mixture: the effect size it is most
    sensitive to. The monitor is :class:`~pytest_crystallize.core.anytime.AnytimeMonitor`.
    """

    scale: float = 0.5


def choose_design(
    where: str, mode: str, max_replicates: int, looks: int, spending: object, futility: object,
    futility_spending: object, power: object, adaptive: object = False,
) -> tuple[SequentialDesign | None, AnytimeDesign | None]:
    """The design ``replicates=mode`` (``"auto"`` or ``"anytime"``) asks for, its options checked.

    ``adaptive=True`` (sequential only) turns on non-binding futility unless
    ``futility`` names a mode. Raises ConfigurationError naming ``where`` and the option.
    """
    if not isinstance(adaptive, bool):
        msg = f"{where}: adaptive must be True or False, got {adaptive!r}"
        raise ConfigurationError(msg)
    if mode == ANYTIME:
        if adaptive:
            msg = (f"{where}: adaptive=True needs replicates='auto' (it drops treatments at looks); an anytime "
                   f"design already stops each hypothesis as soon as it is decided")
            raise ConfigurationError(msg)
        return None, AnytimeDesign()
    if looks > max_replicates:
        msg = f"{where}: looks={looks} exceeds max_replicates={max_replicates}"
        raise ConfigurationError(msg)
    if spending not in SPENDING:
        msg = f"{where}: unknown spending {spending!r}; use one of {', '.join(SPENDING)}"
        raise ConfigurationError(msg)
    if adaptive and futility in (False, None):
        futility = True
    options = _futility_options(where, futility, futility_spending, power)
    return SequentialDesign(looks=looks, spending=spending, adaptive=adaptive, **options), None


def _futility_options(where: str, futility: object, spending: object, power: object) -> dict[str, Any]:
    """The futility fields of a :class:`SequentialDesign`, checked; ``futility=True`` means non-binding."""
    if futility is True or futility is False or futility is None:
        mode: object = "non_binding" if futility else "none"
    else:
        mode = futility
    if mode not in FUTILITY:
        msg = f"{where}: futility must be True, False, 'non_binding' or 'binding', got {futility!r}"
        raise ConfigurationError(msg)
    if spending not in SPENDING:
        msg = f"{where}: unknown futility_spending {spending!r}; use one of {', '.join(SPENDING)}"
        raise ConfigurationError(msg)
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 < power < 1:
        msg = f"{where}: power must be a number strictly between 0 and 1 (the design's power), got {power!r}"
        raise ConfigurationError(msg)
    return {"futility": mode, "futility_spending": spending, "power": float(power)}


def check_anytime_hypotheses(where: str, hypotheses: Iterable[Hypothesis]) -> None:
    """Refuse what an anytime test would silently drop: a relative margin, a covariate, a named test.

    Anytime tests shift the differences by an absolute margin (a relative one
    would move with the data), use the raw paired differences (no covariate
    adjustment) and choose their e-process from the metric's values unless
    the hypothesis names one (``test="t_mixture"`` or ``"betting"``).
    """
    from pytest_crystallize.core.stats import ANYTIME_METHODS  # local: numpy only when anytime is used

    for h in hypotheses:
        if h.covariate is not None:
            msg = (
                f"{where}: hypothesis {h.label!r}: replicates='anytime' tests the raw paired differences and "
                f"cannot adjust for covariate {h.covariate!r}; drop covariate= or use replicates='auto'"
            )
            raise ConfigurationError(msg)
        if h.test != "auto" and h.test not in ANYTIME_METHODS:
            msg = (
                f"{where}: hypothesis {h.label!r}: replicates='anytime' tests with an e-process, not "
                f"test={h.test_name!r}: use test='auto' (betting for 0/1 metrics, else the t-mixture), "
                f"'t_mixture' or 'betting' (metrics in [0, 1]), or replicates='auto'"
            )
            raise ConfigurationError(msg)
        if h.relative_margin:
            msg = (
                f"{where}: hypothesis {h.label!r}: replicates='anytime' needs a margin in the metric's units; "
                f"a relative margin ({h.margin!r} of the baseline mean) moves as the baseline mean is estimated"
            )
            raise ConfigurationError(msg)
