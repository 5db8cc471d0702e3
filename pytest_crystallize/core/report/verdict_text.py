"""Verdicts as plain text: the verdict table and each verdict's summary lines.

A verdict here is the plain-JSON dict of one hypothesis and treatment that a
summary payload carries (see :mod:`pytest_crystallize.core.report.text`);
these functions return lines and tables, and write nothing. :func:`fmt`
formats a number (or shows what is not one) as every text surface does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pytest_crystallize.core.report.table import Column, Table
from pytest_crystallize.core.vocabulary import MARGIN_DIRECTIONS

__all__ = ["best_intervals", "best_verdict_lines", "fmt", "is_number", "verdict_lines", "verdict_table"]


def is_number(value: object) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt(value: object, signed: bool = False) -> str:
    """``value`` to 4 significant digits (``signed``: with its sign); what is not a number as it is."""
    # Details of a loaded result are free-form JSON: show what is not a number rather than crash.
    if not is_number(value):
        return "-" if value is None else str(value)
    return f"{value:+.4g}" if signed else f"{value:.4g}"


_VERDICT_COLUMNS = (
    Column("hypothesis"), Column("treatment"), Column("outcome"), Column("diff"), Column("95% CI"),
    Column("margin"), Column("p"), Column("p adjusted"), Column("test"), Column("design"), Column("reason"),
)


def verdict_table(verdicts: Iterable[Mapping[str, Any]]) -> Table:
    """A row per verdict: outcome, difference with CI, margin, p raw and adjusted, test, design, reason (in short).

    The margin column is left out when no verdict has a margin, the design column when every design is fixed.
    """
    rows = []
    for v in verdicts:
        d = v.get("details") or {}
        ci = "" if d.get("ci_low") is None else f"[{fmt(d['ci_low'], True)}, {fmt(d.get('ci_high'), True)}]"
        treatment, diff = str(v["treatment"]), fmt(v.get("difference"), True) + _pct(d.get("relative_difference"))
        if d.get("covariate"):
            diff += " (adjusted)"
        if v.get("direction") == "best" and d:
            treatment, diff = _best_cells(v, d)
        rows.append((
            str(v["hypothesis"]), treatment, "PASS" if v["holds"] else "FAIL", diff, ci,
            _margin(v, d).removeprefix(", margin "), fmt(v.get("p_value")), fmt(v.get("p_adjusted")),
            str(v.get("test") or ""), str(d["design"]) if isinstance(d.get("design"), str) else "",
            str(v["reason"]).split(":")[0],
        ))
    table = Table(_VERDICT_COLUMNS, tuple(rows))
    if not any(row[5] for row in rows):
        table = table.without("margin")
    # Fixed designs everywhere say nothing the reader does not assume; any other design is shown.
    return table if any(row[9] not in ("", "fixed design") for row in rows) else table.without("design")


def _best_cells(v: Mapping[str, Any], d: Mapping[str, Any]) -> tuple[str, str]:
    """A best verdict's treatment and diff cells: the winner (or who may be best), and its lead on the runner-up."""
    if v["holds"]:
        who = f"best: {v['treatment']}"
    else:
        who = "may be best: " + ", ".join(str(c) for c in d.get("candidates") or (v["treatment"],))
    # The lead in the direction that is better, like the simultaneous interval beside it.
    lead = v.get("difference")
    if isinstance(lead, (int, float)) and d.get("better") == "lower":
        lead = -lead
    runner_up = d.get("runner_up")
    return who, fmt(lead, True) + (f" better than {runner_up}" if runner_up else "")


def _pct(value: object) -> str:
    return f" ({value:+.1%})" if is_number(value) else ""


def _margin(v: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    """The margin a no_worse / equivalent verdict was judged against, as the difference it tolerates."""
    margin = d.get("margin")
    if v.get("direction") not in MARGIN_DIRECTIONS or not isinstance(margin, (int, float)):
        return ""
    if v["direction"] == "equivalent":
        return f", margin ±{fmt(margin)}"
    # no_worse tolerates a difference down to -margin (higher is better) or up to +margin.
    return f", margin {fmt(-margin if d.get('better', 'higher') == 'higher' else margin, True)}"


def _p_text(v: Mapping[str, Any]) -> str:
    p = f"p {fmt(v['p_value'])}"
    if v.get("p_adjusted") is not None and v["p_adjusted"] != v["p_value"]:
        p += f" (adjusted {fmt(v['p_adjusted'])})"
    return p


def best_intervals(d: Mapping[str, Any], names: Iterable[str]) -> str:
    """The simultaneous intervals of ``names`` in a best verdict's details ``d``: ``A [-0.1, +0.3]; ...``."""
    conditions = d.get("conditions") or {}
    return "; ".join(
        f"{n} [{fmt(conditions[n].get('low'), True)}, {fmt(conditions[n].get('high'), True)}]"
        for n in names if isinstance(conditions.get(n), Mapping)
    )


def _adjustment(d: Mapping[str, Any]) -> str:
    """How a covariate adjustment changed the variance: ``" (covariate 'x': variance -62%)"``."""
    reduction = d.get("variance_reduction")
    if not isinstance(reduction, (int, float)) or isinstance(reduction, bool):
        return ""
    return f" (covariate {d.get('covariate')!r}: variance {-reduction:+.0%})"


def best_verdict_lines(v: Mapping[str, Any], *, verbose: bool = False) -> list[str]:
    """A ``direction="best"`` verdict: the winner, or the conditions that cannot be told from it.

    Each interval bounds how much better a condition is than the best of the
    others (simultaneous, multiple comparisons with the best).
    """
    d = v.get("details") or {}
    mark = "PASS" if v["holds"] else "FAIL"
    head = f"  {mark} {v['hypothesis']!r}"
    if not d:
        return [f"{head}: {v['reason']}"]
    design = f"{d['design']}, " if isinstance(d.get("design"), str) else ""
    level = f"{design}{d.get('procedure', v['test'])}, {fmt(100 * d.get('confidence', 0.95))}% simultaneous"
    margin = d.get("margin") or 0
    if d.get("identified") and v["holds"]:
        within = f" or within {fmt(margin)} of it" if margin else ""
        claim = f"{v['treatment']!r} is best{within}: {best_intervals(d, [v['treatment']])}"
    elif len(d.get("candidates", ())) < 2:
        claim = f"{v['treatment']!r} is not identified as best: {best_intervals(d, [v['treatment']])}"
    else:
        claim = (f"cannot separate {', '.join(repr(n) for n in d.get('candidates', ()))}: "
                 f"{best_intervals(d, d.get('candidates', ()))}")
    lines = [f"{head}: {claim} ({level}), {_p_text(v)}"]
    if verbose:
        lines.append(f"       every condition, better than the best of the others by: "
                     f"{best_intervals(d, d.get('conditions', {}))}")
        lines.append(f"       reason: {v['reason']}")
    return lines


def verdict_lines(v: Mapping[str, Any], *, verbose: bool = False) -> list[str]:
    """One line per verdict: outcome, difference with CI, effect size, p raw and adjusted, test."""
    if v.get("direction") == "best":
        return best_verdict_lines(v, verbose=verbose)
    d = v.get("details") or {}
    mark = "PASS" if v["holds"] else "FAIL"
    head = f"  {mark} {v['hypothesis']!r} {v['treatment']} vs baseline"
    if not d:
        return [f"{head}: {v['reason']}"]
    ci = "" if d.get("ci_low") is None else f" [95% CI {fmt(d['ci_low'], True)}, {fmt(d.get('ci_high'), True)}]"
    effect = "" if d.get("effect_size") is None else f", {d.get('effect_size_name')} {fmt(d['effect_size'], True)}"
    p = _p_text(v)
    design = f"{d['design']}, " if isinstance(d.get("design"), str) else ""
    # Adjusted for a covariate, the difference is not the table's difference of means: say so.
    diff = "adjusted diff" if d.get("covariate") else "diff"
    line = (f"{head}: {diff} {fmt(v['difference'], True)}{_pct(d.get('relative_difference'))}{ci}"
            f"{_margin(v, d)}{effect}, {p}, {design}{v['test']}{_adjustment(d)}: {v['reason'].split(':')[0]}")
    lines = [line]
    if verbose:
        lines.append(f"       test choice: {d.get('test_reason', '')}")
        lines.append(
            f"       n {v['n_baseline']} vs {v['n_treatment']}, means {fmt(v['mean_baseline'])} vs "
            f"{fmt(v['mean_treatment'])}, statistic {fmt(d.get('statistic'))}, alternative "
            f"{d.get('alternative')}, alpha {v['alpha']:g}"
        )
        if d.get("odds_ratio") is not None:
            lines.append(f"       odds ratio {fmt(d['odds_ratio'])}")
        if d.get("power") is not None:
            needed = d.get("replicates_needed")
            power = f"{d['power']:.0%}" if is_number(d["power"]) else fmt(d["power"])
            lines.append(f"       power {power} at mde {fmt(d.get('mde'))}; "
                         f"replicates for 80% power: {needed if needed is not None else 'unreachable'}")
        if d.get("degenerate"):
            lines.append(f"       note: {d['degenerate']}")
        lines.append(f"       reason: {v['reason']}")
    return lines
