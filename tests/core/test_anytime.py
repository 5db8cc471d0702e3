"""replicates='anytime': every hypothesis checked after every replicate; the time budget for every design."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import ConfigurationError, Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report.text import summarize, summary_lines


def _paired(ctx):
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    shared = np.random.default_rng(ctx.seed).normal()
    ctx.metrics.add("x", shared + rng.normal() + ctx.get("shift", 0.0))
    ctx.metrics.add("win", int(rng.random() < 0.4 + ctx.get("shift", 0.0) / 4))


def _run(shift: float, metric: str = "x", *, seed: int = 1, **kw):
    options = {"replicates": "anytime", "max_replicates": 300, **kw}
    return run_experiment(
        _paired, seed=seed, treatments=[Treatment("t", {"shift": shift})],
        hypotheses=[hypothesis(metric, "maximize")], **options,
    )


def _rouder(d: np.ndarray, g: float = 0.25) -> float:
    """Rouder et al. (2009) with a normal prior of variance g, from scipy's one-sample t."""
    n = len(d)
    t = stats.ttest_1samp(d, 0.0).statistic
    nu = n - 1
    return (1 + n * g) ** -0.5 * ((1 + t * t / nu) / (1 + t * t / (nu * (1 + n * g)))) ** (n / 2)


def test_a_clear_effect_stops_at_the_first_replicate_whose_evidence_crosses() -> None:
    result = _run(1.0)
    verdict = result.verdicts[0]
    assert verdict.holds
    info = verdict.details["anytime"]
    n = info["replicates"]
    assert result.provenance.anytime
    assert n < 300
    assert result.provenance.replicates < 300
    _, base = result.select("x", "baseline")
    _, treat = result.select("x", "t")
    d = treat - base
    # One-sided at alpha 0.05: the first n whose Bayes factor reaches 1 / (2 alpha) = 10.
    bfs = [_rouder(d[:k]) for k in range(2, len(d) + 1)]
    first = next(k for k, bf in enumerate(bfs, start=2) if bf >= 10)
    assert n == first
    assert verdict.p_value == pytest.approx(1 / (2 * max(bfs[: first - 1])), rel=1e-9)
    assert verdict.n_baseline == n  # the verdict is built on the replicates up to the deciding one
    assert verdict.test == "t_mixture"
    assert verdict.details["design"] == "anytime design (t-mixture e-process, normal differences assumed)"


def test_a_treatment_shown_worse_stops_and_says_so() -> None:
    result = _run(-1.0)
    verdict = result.verdicts[0]
    assert not verdict.holds
    assert verdict.reason.startswith(f"stopped at replicate {verdict.details['anytime']['replicates']} of 300: "
                                     "shown not to hold")
    assert result.provenance.replicates < 300


def test_0_1_metrics_use_the_betting_test() -> None:
    verdict = _run(1.5, "win").verdicts[0]
    assert verdict.test == "betting"
    assert verdict.holds
    assert verdict.details["design"] == "anytime design (betting e-process, 0/1 values)"


def test_the_summary_reports_the_replicates_saved() -> None:
    lines = summary_lines(summarize(_run(1.0)))
    assert any(line.startswith("  anytime: stopped after ") and "saved" in line for line in lines), lines
    assert any("anytime design (t-mixture e-process" in line for line in lines), lines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_replicates": None}, "replicates='anytime' needs max_replicates="),
        ({"hypotheses": [hypothesis("x", "no_worse", margin="2%")]}, "needs a margin in the metric's units"),
        ({"hypotheses": []}, "replicates='anytime' stops when every hypothesis is decided"),
        # What the e-process would silently drop: a covariate adjustment, a test the user chose.
        ({"hypotheses": [hypothesis("x", "maximize", covariate="win")]}, "cannot adjust for covariate 'win'"),
        ({"hypotheses": [hypothesis("x", "maximize", test="wilcoxon")]}, "not test='wilcoxon'"),
        ({"hypotheses": [hypothesis("win", "maximize", test="fisher_exact")]}, "not test='fisher_exact'"),
        ({"hypotheses": [hypothesis("x", "best")]}, "'best' needs a fixed number of replicates; drop replicates='anytime'"),
    ],
)
def test_bad_anytime_options_name_the_experiment(options: dict[str, object], message: str) -> None:
    kw = {"replicates": "anytime", "max_replicates": 40, "hypotheses": [hypothesis("x", "maximize")], **options}
    with pytest.raises(ConfigurationError, match=message) as info:
        run_experiment(_paired, name="any", treatments=[Treatment("t")], **kw)
    assert "experiment 'any'" in str(info.value)


def _counts(ctx):
    # A count metric whose first two replicates happen to be 0 or 1 in both conditions.
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    early = [0, 1][ctx.replicate] if ctx.replicate < 2 else None
    ctx.metrics.add("errors", early if early is not None else int(rng.poisson(1.0 + ctx.get("shift", 0.0))))
    ctx.metrics.add("accuracy", float(np.clip(rng.normal(0.6 + ctx.get("shift", 0.0) / 5, 0.1), 0.0, 1.0)))


def test_a_hypothesis_may_name_its_e_process() -> None:
    """A count that looked 0/1 at first: the automatic choice (betting) cannot go on once a count of 2
    arrives, and the verdict says how to declare the t-mixture; declared, it runs. A bounded
    continuous metric may ask for betting (no normality assumed). A fixed design refuses either name."""
    treatments = [Treatment("more", {"shift": 1.0})]
    options = {"replicates": "anytime", "max_replicates": 300, "treatments": treatments}
    auto = run_experiment(_counts, hypotheses=[hypothesis("errors", "maximize")], **options).verdicts[0]
    assert not auto.holds
    assert "declare hypothesis('errors', ..., test='t_mixture')" in auto.reason
    named = run_experiment(_counts, hypotheses=[hypothesis("errors", "maximize", test="t_mixture")], **options)
    assert (named.verdicts[0].test, named.verdicts[0].holds) == ("t_mixture", True)
    bets = run_experiment(_counts, hypotheses=[hypothesis("accuracy", "maximize", test="betting")], **options)
    assert (bets.verdicts[0].test, bets.verdicts[0].holds) == ("betting", True)
    with pytest.raises(ConfigurationError, match="test 't_mixture' is an anytime e-process"):
        run_experiment(_counts, replicates=20, treatments=treatments,
                       hypotheses=[hypothesis("errors", "maximize", test="t_mixture")])


def test_peeking_after_every_replicate_keeps_the_false_positive_rate() -> None:
    """100 null experiments end to end, each checked after every replicate up to 60."""
    experiments, alpha = 100, 0.05
    rejected = sum(_run(0.0, seed=seed, max_replicates=60).verdicts[0].holds for seed in range(experiments))
    assert rejected <= stats.binom.ppf(0.999, experiments, alpha), rejected


# -- the time budget: a deadline that has passed stops each design after its first batch --------------

SPENT = 1e-9  # seconds: the deadline passes before the first batch ends


def test_a_budget_keeps_anytime_verdicts_valid() -> None:
    result = _run(0.0, budget=SPENT)
    verdict = result.verdicts[0]
    assert result.provenance.stopped_by == "budget"
    assert result.provenance.replicates == 2  # the first batch
    assert verdict.reason.startswith("stopped by budget after 2 of 300 replicates (still valid)")
    assert verdict.details["anytime"]["stopped_by"] == "budget"


def test_a_budget_makes_a_fixed_design_say_its_verdict_is_not_valid() -> None:
    result = _run(3.0, replicates=40, budget=SPENT)
    verdict = result.verdicts[0]
    assert result.provenance.replicates == math.ceil(40 / 20)
    assert not verdict.holds
    assert verdict.reason.startswith("stopped by budget after 2 of 40 replicates: not valid")
    assert verdict.details["design"] == "fixed design, stopped by budget: not valid"
    lines = summary_lines(summarize(result))
    assert "  budget: stopped by the time budget after 2 of 40 replicates per condition; a fixed design cut " \
           "short makes no claim" in lines


def test_a_budget_stops_a_sequential_design_with_the_verdicts_of_its_last_look() -> None:
    result = _run(0.0, replicates="auto", max_replicates=40, looks=2, budget=SPENT)
    verdict = result.verdicts[0]
    assert not verdict.holds
    assert verdict.reason == "stopped by budget before the first look: no claim"
    # A look that completed keeps its verdict, and says what stopped the run.
    result = _run(0.0, replicates="auto", max_replicates=40, looks=20, budget=SPENT)
    verdict = result.verdicts[0]
    assert result.provenance.looks_taken == 1
    assert verdict.reason.startswith("stopped by budget after look 1 of 20:")


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="budget must be a number of seconds > 0"):
        _run(0.0, budget=0)


def test_a_fixed_design_cut_by_the_budget_can_be_resumed_to_a_valid_verdict(tmp_path: Path) -> None:
    cut = _run(3.0, replicates=40, budget=SPENT, journal=tmp_path)
    assert cut.provenance.replicates == 2
    assert any("the time budget stopped the run" in note for note in cut.provenance.journal_notes)
    whole = _run(3.0, replicates=40, journal=tmp_path, resume=True)
    assert whole.provenance.resumed == 2 * 2  # two replicates of two conditions came from the journal
    assert whole.verdicts[0].holds
    assert whole.verdicts[0].details["design"] == "fixed design"
    assert whole.verdicts[0].p_value == _run(3.0, replicates=40).verdicts[0].p_value  # the uninterrupted one
