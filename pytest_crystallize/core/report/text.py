"""Results as plain text: summary payloads, summary tables, failure reports.

The verdict table and verdict lines are in
:mod:`pytest_crystallize.core.report.verdict_text`.

A *payload* is the plain-JSON digest of one result that the pytest layer
ships from a worker to the terminal (it must survive pytest-xdist). Nothing
here writes to a terminal; functions return lines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_crystallize.core.alignment import replicate_means
from pytest_crystallize.core.report.table import Column, Table
from pytest_crystallize.core.report.verdict_text import (
    best_intervals,
    fmt,
    verdict_lines,
)
from pytest_crystallize.core.treatments import BASELINE

if TYPE_CHECKING:  # results.py renders itself with this module's help: no import back at run time
    from pytest_crystallize.core.results import ExperimentResult

__all__ = [
    "experiment_status",
    "failure_report",
    "summarize",
    "summary_heading",
    "summary_lines",
    "summary_notes",
    "summary_table",
    "totals_line",
]

_COLUMNS = tuple(Column(h) for h in ("condition", "metric", "n", "mean", "std", "95% CI", "diff", "p", "verdict"))


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def summarize(result: ExperimentResult) -> dict[str, Any]:
    """Digest ``result`` into a plain-JSON payload for the summary table."""
    from pytest_crystallize.core.stats import binary_outcome, describe

    rows = []
    notes = []
    for metric in result.metrics:
        base_rep, base = result.select(metric, BASELINE)
        base_rep, base, _ = replicate_means(base_rep, base, omit_non_finite=True)
        most, partial = 1, False
        binary = binary_outcome(result.select(metric, c)[1] for c in result.conditions)
        for condition in result.conditions:
            replicates, values = result.select(metric, condition)
            replicates, finite, per_replicate = replicate_means(replicates, values, omit_non_finite=True)
            most = max(most, per_replicate)
            if not len(finite):
                continue
            difference, shared = _difference(replicates, finite, base_rep, base)
            partial = partial or (condition != BASELINE and shared)
            s = describe(finite, binary=binary)
            # A row is a condition against the baseline: a best verdict (every condition at once) has its own line.
            verdicts = [v for v in result.verdicts
                        if v.metric == metric and v.treatment == condition and v.direction != "best"]
            rows.append({
                "condition": condition, "metric": metric, "n": s.n,
                "dropped": int(np.count_nonzero(~np.isfinite(values))),
                "mean": _num(s.mean),
                "std": _num(s.std), "ci_low": _num(s.ci_low), "ci_high": _num(s.ci_high),
                "difference": None if condition == BASELINE else _num(difference),
                "p": [_num(v.p_adjusted) for v in verdicts],
                "verdict": [v.holds for v in verdicts],
            })
        if partial:  # e.g. an adaptive sweep's treatments dropped at an early look
            notes.append(f"{metric!r}: diff is over the replicates each condition shares with the baseline "
                         f"(paired, as the verdicts)")
        if most > 1:
            notes.append(f"{metric!r}: up to {most} values per replicate; rows show per-replicate means")
    first = result.errors[0].to_dict() if result.errors else None
    prov = result.provenance
    if prov.resumed:  # None: not asked to resume; 0: asked, but the journal held nothing of this run
        total = prov.replicates * len(result.conditions)
        notes.append(f"resumed: {prov.resumed} of {total} replicate tasks came from the journal of an "
                     f"interrupted run; the others ran now")
    notes += [f"journal: {note}" for note in prov.journal_notes]
    if prov.design is not None:
        notes.append(f"design {prov.design}: replicates share training data; verdicts use a corrected test")
    notes += [f"upstream: {note}" for note in prov.upstream_notes]
    notes += _confirmation_notes(result)
    sequential = None
    if prov.max_replicates is not None:
        sequential = {"replicates": prov.replicates, "max_replicates": prov.max_replicates,
                      "looks": prov.looks, "looks_taken": prov.looks_taken,
                      "conditions": len(result.conditions), "anytime": prov.anytime,
                      "stopped_by": prov.stopped_by, "tasks_run": prov.tasks_run,
                      "decided_within": _decided_within(result)}
    return {
        "notes": notes,
        "execution": list(prov.execution),
        "sequential": sequential,
        "experiment": result.experiment,
        "passed": result.passed,
        "replicates": result.provenance.replicates,
        "seed": result.provenance.master_seed,
        "error_count": len(result.errors),
        "first_error": first,
        "rows": rows,
        "verdicts": [v.to_dict() for v in result.verdicts],
    }


def _difference(
    replicates: np.ndarray, values: np.ndarray, base_replicates: np.ndarray, base: np.ndarray
) -> tuple[float, bool]:
    """A condition's mean minus the baseline's, and whether only the replicates they share were compared.

    Over the replicates both have, as a verdict pairs them (an adaptive sweep
    stops a decided treatment while the baseline runs on; a replicate that
    failed in one condition is left out of both); with none shared, the
    difference of the two means.
    """
    shared = np.intersect1d(replicates, base_replicates)
    if not len(shared) or len(shared) == len(replicates) == len(base_replicates):
        return (float(values.mean()) - float(base.mean()) if len(base) else math.nan), False
    mine, theirs = np.isin(replicates, shared), np.isin(base_replicates, shared)
    return float(values[mine].mean()) - float(base[theirs].mean()), True


def _decided_within(result: ExperimentResult) -> int | None:
    """The replicates an anytime design's verdicts were decided on (the last pair's), or None."""
    seen = [v.details["anytime"].get("replicates") for v in result.verdicts
            if isinstance(v.details.get("anytime"), Mapping)]
    counts = [n for n in seen if isinstance(n, int)]
    return max(counts) if counts and len(counts) == len(seen) else None


def _confirmation_notes(result: ExperimentResult) -> list[str]:
    """What a confirmatory run is worth, once per experiment: fresh data, pre-registered, what taints it."""
    found = [v.details["confirmation"] for v in result.verdicts if isinstance(v.details.get("confirmation"), Mapping)]
    if not found:
        return []
    c = found[0]
    worth = "a clean confirmation" if c.get("confirmed") else "NOT clean"
    head = (f"confirmation: attempt {c.get('attempt')} is {worth} (pre-registered: "
            f"{'yes' if c.get('preregistered') else 'no'}; fresh data: {'yes' if c.get('fresh') else 'no'})")
    return [head, *(f"confirmation: {line}" for line in [*c.get("problems", ()), *c.get("notes", ())])]



def _cells(row: Mapping[str, Any]) -> tuple[str, ...]:
    ci = "-" if row["ci_low"] is None else f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"
    p = " ".join(fmt(v) for v in row["p"]) if row["p"] else ""
    verdict = " ".join("PASS" if ok else "FAIL" for ok in row["verdict"])
    diff = "" if row["difference"] is None else fmt(row["difference"], signed=True)
    return (row["condition"], row["metric"], str(row["n"]), fmt(row["mean"]), fmt(row["std"]),
            ci, diff, p, verdict)


def experiment_status(payload: Mapping[str, Any]) -> str:
    """``passed``/``FAILED``; with a regression gate, both outcomes: ``hypotheses passed; gate FAILED``.

    A payload's ``failures`` (what else failed the item: ``--crystallize-require-confirmed``,
    a warning turned into an error) follow: ``hypotheses passed; FAILED: not a clean confirmation``.
    """
    if payload.get("interrupted"):
        return "interrupted"
    gate, failures = payload.get("gate"), payload.get("failures") or ()
    if not gate and not failures:
        return "passed" if payload["passed"] else "FAILED"
    parts = ["hypotheses passed" if payload["passed"] else "FAILED"]
    if gate:
        parts.append("gate FAILED" if gate.get("failed") else "gate passed" if gate.get("gated", True) else "not gated")
    if failures:
        parts.append("FAILED: " + "; ".join(failures))
    return "; ".join(parts)


def summary_heading(payload: Mapping[str, Any], *, title: str | None = None) -> str:
    """The experiment's title, replicates and seed, and its outcome (with a gate, both outcomes)."""
    name = title or payload["experiment"]
    return f"{name} ({payload['replicates']} replicates, seed {payload['seed']}): {experiment_status(payload)}"


def summary_table(payload: Mapping[str, Any]) -> Table | None:
    """The table of one experiment: a row per condition and metric (None when no metric was recorded)."""
    if not payload["rows"]:
        return None
    return Table(_COLUMNS, tuple(_cells(r) for r in payload["rows"]))


def _notes(payload: Mapping[str, Any]) -> list[str]:
    return [f"note: {note}" for note in payload.get("notes", ())]


def _run_notes(payload: Mapping[str, Any]) -> list[str]:
    """How a sequential design stopped, and the replicates that raised."""
    lines = []
    seq = payload.get("sequential")
    if seq:
        lines.append(_stop_line(seq))
    if payload["error_count"]:
        lines.append(f"{payload['error_count']} replicate error(s); first: {_error_headline(payload['first_error'])}")
    return lines


def _stop_line(seq: Mapping[str, Any]) -> str:
    """How a sequential, anytime or budget-stopped run ended, and the replicate runs it saved."""
    of = f"{seq['replicates']} of {seq['max_replicates']} replicates per condition"
    if seq.get("stopped_by") == "budget":
        if seq.get("looks") is not None and not seq["looks_taken"]:
            return f"sequential: stopped by the time budget before the first look, after {of}; no claim"
        if seq.get("looks") is not None:
            return (f"sequential: stopped by the time budget at look {seq['looks_taken']} of {seq['looks']} "
                    f"after {of}; verdicts of the last look taken")
        if seq.get("anytime"):
            return f"anytime: stopped by the time budget after {of}; the verdicts are valid at this stop"
        return f"budget: stopped by the time budget after {of}; a fixed design cut short makes no claim"
    runs = seq.get("tasks_run")
    planned = seq["max_replicates"] * seq["conditions"]
    ran = seq["replicates"] * seq["conditions"] if runs is None else runs
    saved = f"saved {planned - ran} replicate runs"
    if runs is not None and runs < seq["replicates"] * seq["conditions"]:
        saved += f" ({ran} of {planned} run: the adaptive sweep dropped decided treatments)"
    if seq.get("looks") is not None:
        return f"sequential: stopped at look {seq['looks_taken']} of {seq['looks']} after {of}; {saved}"
    line = f"anytime: stopped after {of} (verdicts valid at any stop); {saved}"
    decided = seq.get("decided_within")
    if isinstance(decided, int) and decided < seq["replicates"]:
        line += (f"; the verdicts were decided on the first {decided} replicates, the table counts every "
                 f"replicate run")
    return line


def summary_notes(payload: Mapping[str, Any]) -> list[str]:
    """The notes of one experiment, unindented: notes, how a sequential design stopped, replicate errors."""
    return [*_notes(payload), *_run_notes(payload)]


def summary_lines(payload: Mapping[str, Any], *, title: str | None = None, verbose: bool = False) -> list[str]:
    """The table of one experiment, then one line per verdict (more with ``verbose``).

    A payload may carry ``gate``: ``{"failed": bool, "saved_run": str}``,
    the outcome of the regression gate (added by the pytest plugin's storage),
    shown next to the experiment's own outcome.
    """
    lines = [summary_heading(payload, title=title)]
    table = summary_table(payload)
    lines += ["  no metrics recorded"] if table is None else table.lines(indent="  ")
    lines += [f"  {note}" for note in _notes(payload)]
    if verbose:
        lines += [f"  execution: {note}" for note in payload.get("execution", ())]
    for verdict in payload["verdicts"]:
        lines += verdict_lines(verdict, verbose=verbose)
    lines += [f"  {note}" for note in _run_notes(payload)]
    return lines


def _error_headline(error: Mapping[str, Any]) -> str:
    where = f"condition {error['condition']!r}, replicate {error['replicate']}"
    if error.get("step"):
        where += f", step {error['step']!r}"
    return f"{where}: {error['error_type']}: {error['message']}"


def totals_line(payloads: Iterable[Mapping[str, Any]]) -> str:
    """The closing line: hypotheses passed and failed across experiments."""
    payloads = list(payloads)
    holds = [v["holds"] for p in payloads for v in p["verdicts"]]
    passed = sum(holds)
    failed_runs = sum(1 for p in payloads if p["error_count"])
    noun = "hypothesis" if passed == 1 else "hypotheses"
    line = (f"{passed} {noun} passed, {len(holds) - passed} failed "
            f"in {len(payloads)} experiment{'s' if len(payloads) != 1 else ''}")
    if failed_runs:
        line += f"; {failed_runs} with replicate errors"
    interrupted = sum(1 for p in payloads if p.get("interrupted"))
    if interrupted:
        line += f"; {interrupted} interrupted (no verdicts)"
    gate_failed = sum(1 for p in payloads if (p.get("gate") or {}).get("failed"))
    if gate_failed:
        line += f"; {gate_failed} failed the regression gate"
    others: dict[str, int] = {}
    for p in payloads:
        for failure in p.get("failures") or ():
            others[failure] = others.get(failure, 0) + 1
    line += "".join(f"; {n} failed: {failure}" for failure, n in others.items())
    return line


def _verdict_block(v: Mapping[str, Any]) -> list[str]:
    d = v.get("details") or {}
    if v.get("direction") == "best":
        lines = [f"hypothesis {v['hypothesis']!r} (which condition is best): {v['reason']}"]
        if d:
            lines.append(f"    better than the best of the others by: {best_intervals(d, d.get('conditions', {}))}")
        return lines
    lines = [f"hypothesis {v['hypothesis']!r} for treatment {v['treatment']!r}: {v['reason']}"]
    if not d:
        return lines
    ci = ""
    if d.get("ci_low") is not None:
        ci = f" [95% CI {fmt(d['ci_low'], True)}, {fmt(d.get('ci_high'), True)}]"
    lines.append(f"    test: {v['test']} ({d.get('test_reason', '')}); n {v['n_baseline']} vs {v['n_treatment']}")
    lines.append(
        f"    baseline mean {fmt(v['mean_baseline'])}, treatment mean {fmt(v['mean_treatment'])}, "
        f"difference {fmt(v['difference'], True)}{ci}"
    )
    if d.get("effect_size") is not None:
        lines.append(f"    effect size: {d.get('effect_size_name')} {fmt(d['effect_size'], True)}")
    return lines


def failure_report(result: ExperimentResult) -> str:
    """A readable explanation of why ``result`` did not pass (no internal traceback)."""
    name = result.experiment
    parts: list[str] = []
    if result.errors:
        n_tasks = result.provenance.replicates * len(result.conditions)
        first = result.errors[0]
        parts.append(
            f"experiment {name!r}: {len(result.errors)} of {n_tasks} replicates raised an error; the first, "
            f"{first.headline}\n\n{first.traceback.rstrip()}"
        )
    rejected = [v for v in result.verdicts if not v.holds]
    if rejected:
        head = f"experiment {name!r}: {len(rejected)} of {len(result.verdicts)} hypotheses did not hold"
        blocks = [head] + ["  " + "\n  ".join(_verdict_block(v.to_dict())) for v in rejected]
        parts.append("\n".join(blocks))
    return "\n\n".join(parts)
