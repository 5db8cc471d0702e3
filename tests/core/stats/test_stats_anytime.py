"""Anytime-valid tests: the papers' formulas worked independently, and peeking after every replicate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from pytest_crystallize.core.stats import anytime_test, betting_capital, t_mixture_bayes_factor
from pytest_crystallize.errors import StatisticsError


def _bayes_factor_by_integration(x: np.ndarray, scale: float) -> float:
    """The definition, integrated numerically: right-Haar prior 1/sigma on the scale under both
    hypotheses, delta = mu / sigma ~ N(0, scale^2) under the alternative (constants common to
    both likelihoods cancel)."""
    n, total, squares = len(x), float(x.sum()), float((x * x).sum())

    def likelihood(mu: float, sigma: float) -> float:
        return math.exp(-(squares - 2 * mu * total + n * mu * mu) / (2 * sigma * sigma)) / sigma**n

    def over_delta(sigma: float) -> float:
        def integrand(delta: float) -> float:
            prior = math.exp(-delta * delta / (2 * scale * scale)) / (scale * math.sqrt(2 * math.pi))
            return likelihood(delta * sigma, sigma) * prior

        inner, _ = integrate.quad(integrand, -12 * scale, 12 * scale, epsabs=0, epsrel=1e-11, limit=200)
        return inner / sigma

    top, _ = integrate.quad(over_delta, 0, np.inf, epsabs=0, epsrel=1e-9, limit=200)
    bottom, _ = integrate.quad(lambda sigma: likelihood(0.0, sigma) / sigma, 0, np.inf, epsabs=0, epsrel=1e-9)
    return top / bottom


def test_t_mixture_bayes_factor_is_the_integral_it_stands_for() -> None:
    x = np.array([0.8, 1.9, -0.3, 1.2, 0.4, 2.1])
    bf = t_mixture_bayes_factor(x, 0.5)
    assert bf[0] == 1.0
    for n in (2, 6):
        assert bf[n - 1] == pytest.approx(_bayes_factor_by_integration(x[:n], 0.5), rel=1e-6)


def test_t_mixture_decision_follows_the_stated_rule() -> None:
    rng = np.random.default_rng(4)
    d = rng.normal(0.6, 1.0, 300)
    out = anytime_test(d, direction="maximize", alpha=0.05)
    bf = t_mixture_bayes_factor(d, 0.5)
    first = int(np.argmax(bf >= 1 / (2 * 0.05))) + 1  # the first crossing of 1/(2 alpha)
    assert (out.decided, out.n) == ("holds", first)
    assert out.p_value == pytest.approx(1 / (2 * bf[:first].max()))
    assert out.estimate == pytest.approx(d[:first].mean())
    # The confidence sequence at n holds every mean whose two-sided test has not reached 1/(1 - 0.95).
    for mu in (out.ci_low + 1e-6, out.ci_high - 1e-6):
        assert t_mixture_bayes_factor(d[:first] - mu, 0.5).max() < 20 + 1e-6
    worse = anytime_test(-d, direction="maximize", alpha=0.05)
    assert (worse.decided, worse.n, worse.p_value) == ("fails", first, 1.0)


def _capital_by_the_paper(x: list[float], m: float, alpha: float) -> tuple[float, float]:
    """Waudby-Smith & Ramdas: predictable plug-in bets, hedged capital, c = 1/2, one-sided level."""
    plus = minus = 1.0
    total, squares = 0.0, 0.0
    variance = 0.25
    for i, value in enumerate(x, start=1):
        bet = math.sqrt(2 * math.log(1 / alpha) / (variance * i * math.log(1 + i)))
        plus *= 1 + min(bet, 0.5 / m) * (value - m)
        minus *= 1 - min(bet, 0.5 / (1 - m)) * (value - m)
        total += value
        mu = (0.5 + total) / (i + 1)
        squares += (value - mu) ** 2
        variance = (0.25 + squares) / (i + 1)
    return plus, minus


def test_betting_capital_is_the_papers_formula() -> None:
    x = [1.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.5, 1.0]
    plus, minus = betting_capital(np.array(x), 0.4, 0.05, sided=True)
    for n in range(1, len(x) + 1):
        assert (plus[n - 1], minus[n - 1]) == pytest.approx(_capital_by_the_paper(x[:n], 0.4, 0.05), rel=1e-12)


def test_betting_decides_a_clear_win_in_0_1_metrics() -> None:
    rng = np.random.default_rng(1)
    d = (rng.random(400) < 0.8).astype(float) - (rng.random(400) < 0.4).astype(float)
    out = anytime_test(d, direction="maximize", alpha=0.05, method="betting")
    assert out.decided == "holds"
    assert out.p_value <= 0.05
    assert out.ci_low < 0.4 < out.ci_high


def test_equivalence_needs_both_halves() -> None:
    rng = np.random.default_rng(2)
    d = rng.normal(0.0, 1.0, 2000)
    assert anytime_test(d, direction="equivalent", alpha=0.05, margin=0.5).decided == "holds"
    assert anytime_test(d + 1.0, direction="equivalent", alpha=0.05, margin=0.5).decided == "fails"


def test_bad_input_is_named() -> None:
    with pytest.raises(StatisticsError, match="finite differences"):
        anytime_test(np.array([1.0, np.nan]), direction="maximize", alpha=0.05)
    with pytest.raises(StatisticsError, match=r"differences in \[-1, 1\]"):
        anytime_test(np.array([2.0, 0.0]), direction="maximize", alpha=0.05, method="betting")


def _false_positives(draw, *, direction: str, method: str, runs: int, seed: int) -> int:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    tests = (anytime_test(draw(rng), direction=direction, alpha=0.05, method=method, interval=False)
             for _ in range(runs))
    return sum(test.decided == "holds" for test in tests)


@pytest.mark.parametrize("direction", ["two-sided", "maximize"])
def test_peeking_after_every_replicate_keeps_the_false_positive_rate(direction: str) -> None:
    """1,000 null runs of 200 replicates, each checked after every replicate (differences of
    skew-free normals, and of correlated 0/1 outcomes): rejections within binomial noise of alpha."""
    runs, alpha = 1000, 0.05
    high = stats.binom.ppf(0.999, runs, alpha)
    normal = _false_positives(lambda rng: rng.normal(0, 3, 200), direction=direction, method="t_mixture",
                              runs=runs, seed=1)
    assert normal <= high, normal

    def binary(rng: np.random.Generator) -> np.ndarray:
        shared = rng.random(200)
        return (shared < 0.3).astype(float) - ((shared + rng.random(200) * 0.4) % 1 < 0.3).astype(float)

    bets = _false_positives(binary, direction=direction, method="betting", runs=runs, seed=2)
    assert bets <= high, bets
    # The same peeking with a plain t-test at every replicate: far more than alpha (this is what the
    # e-process prevents, and shows the simulation can fail).
    d = np.random.default_rng(3).normal(0, 3, (runs, 200))
    n = np.arange(1, 201)
    mean = d.cumsum(axis=1) / n
    sd = np.sqrt(np.maximum((d * d).cumsum(axis=1) - n * mean**2, 0) / np.maximum(n - 1, 1))
    n, mean, sd = n[4:], mean[:, 4:], sd[:, 4:]  # from 5 replicates on
    p = 2 * stats.t.sf(np.abs(mean / (sd / np.sqrt(n))), n - 1)
    assert (p.min(axis=1) < alpha).sum() > 3 * runs * alpha


def test_one_sided_p_value_counts_only_evidence_for_the_claim() -> None:
    """A maximize hypothesis whose differences point down: the Bayes factor grows (it is two-sided),
    but no level's one-sided rule can ever claim, so the always-valid p-value is 1; the mirror image
    has the same Bayes factors and p = 1 / (2 BF) at its last (largest) record."""
    d = np.array([-0.5, 0.3, -0.9, -0.2, -0.6, -0.4, -0.8, -0.5])  # every prefix mean is negative
    bf = t_mixture_bayes_factor(d, 0.5)
    assert bf[-1] == bf.max() > 4  # crossing 1/(2 alpha) = 50 nowhere: undecided
    wrong_way = anytime_test(d, direction="maximize", alpha=0.01)
    assert (wrong_way.decided, wrong_way.p_value) == ("", 1.0)
    right_way = anytime_test(-d, direction="maximize", alpha=0.01)
    assert right_way.decided == ""
    assert right_way.p_value == pytest.approx(1 / (2 * bf[-1]))


def test_one_sided_always_valid_p_value_is_calibrated_beyond_alpha() -> None:
    """1,000 null runs of 300 normal differences: the one-sided always-valid p-value at the stop is
    at most u with probability at most u (within 3 binomial standard errors), at u = alpha and above."""
    runs = 1000
    rng = np.random.default_rng(11)
    p = np.array([anytime_test(rng.normal(0, 1, 300), direction="maximize", alpha=0.05, interval=False).p_value
                  for _ in range(runs)])
    for u in (0.05, 0.1, 0.2, 0.3):
        assert (p <= u).mean() <= u + 3 * math.sqrt(u * (1 - u) / runs), u
