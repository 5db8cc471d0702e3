"""The ``crystallize`` command (also ``python -m pytest_crystallize``): saved runs from a shell.

``list`` the saved runs, ``show`` one, ``compare`` two with the semantics of
``pytest --crystallize-gate`` (exit code 1 when a metric regressed, so it
gates any CI), ``export`` one to CSV, Parquet or JSON, ``report`` one (or
one compared with a base run) as a self-contained HTML file; ``cache info``,
``cache clear`` and ``cache prune`` look after the step cache in the store.

Exit codes: 0 success, 1 a regression (``compare``), 2 a usage error or a
run that cannot be found or read (never 1: unreadable input is not a
regression).

The store is ``--storage``, else ``$CRYSTALLIZE_STORAGE`` (both must be an
existing store), else the one pytest would use from the working directory:
``crystallize_storage`` of the project's config file (``pytest.ini``,
``pyproject.toml``, ``tox.ini``, ``setup.cfg``..., found upward like pytest
finds its rootdir), relative to that rootdir.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from pytest_crystallize.core.defaults import CACHE_DIR, DEFAULT_CACHE_SIZE, DEFAULT_STORAGE, LATEST
from pytest_crystallize.core.report.gate_text import gate_lines, gate_totals
from pytest_crystallize.core.report.table import Column, Table
from pytest_crystallize.core.store.gate import GateReport, gate_experiment
from pytest_crystallize.core.store.gate_specs import GateSpec, parse_margin
from pytest_crystallize.core.store.stores import RUNS_DIR, DirectoryStore
from pytest_crystallize.errors import ConfigurationError, CrystallizeError, ResultsError
from pytest_crystallize.project_config import find_config, find_storage

if TYPE_CHECKING:
    import pandas as pd

    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.records import RunRecord

__all__ = ["main"]

PROGRAM: Final = "crystallize"
STORAGE_ENV: Final = "CRYSTALLIZE_STORAGE"
EXIT_OK: Final = 0
EXIT_REGRESSION: Final = 1
EXIT_ERROR: Final = 2


class _Failure(Exception):
    """A problem to report on stderr with exit code 2."""


def _store(args: argparse.Namespace) -> DirectoryStore:
    """The store to use: ``--storage``, ``$CRYSTALLIZE_STORAGE`` (both must exist), else the project's."""
    given, source = args.storage, "--storage"
    if given is None and os.environ.get(STORAGE_ENV):
        given, source = Path(os.environ[STORAGE_ENV]), f"${STORAGE_ENV}"
    if given is None:
        root, args.storage_source = find_storage(Path.cwd())
        return DirectoryStore(root)
    args.storage_source = source
    if not given.is_dir():
        what = "is not a directory" if given.exists() else "does not exist"
        msg = f"{source} {given}: {what}; give the directory of saved runs (the one holding runs/)"
        raise _Failure(msg)
    if not (given / RUNS_DIR).is_dir():
        msg = f"{source} {given}: not a store of saved runs (it has no {RUNS_DIR}/ directory)"
        raise _Failure(msg)
    return DirectoryStore(given)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="List, show, compare and export runs saved by pytest --crystallize-save.",
        epilog="RUN is 'latest', a run id or unique id prefix, a run name (its newest run), or a path "
               "containing '/' to a run directory. Exit codes: 0 ok, 1 regression (compare), 2 error.",
    )
    parser.add_argument("--storage", metavar="DIR", type=Path, default=None,
                        help=f"the store (default: ${STORAGE_ENV}, else crystallize_storage of the project's "
                             "pytest config file, found like pytest finds it, relative to its rootdir; without one, "
                             f"the nearest {DEFAULT_STORAGE} directory at or above the working directory)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list saved runs, oldest first")
    listing.add_argument("--json", action="store_true", help="print the run records as JSON")
    show = commands.add_parser("show", help="show one run: its record and each experiment's table")
    show.add_argument("run", metavar="RUN", nargs="?", default=LATEST)
    show.add_argument("--json", action="store_true", help="print the run record as JSON")
    compare = commands.add_parser(
        "compare", help="compare NEW with BASE like --crystallize-gate; exit 1 on a regression",
        description="For every experiment, condition and metric with a known good direction, test NEW "
                    "against BASE (one-sided, paired when the seeds match, corrected per experiment) and "
                    "exit with 1 if any got significantly worse by more than the margin.",
    )
    compare.add_argument("base", metavar="BASE", help="the reference run")
    compare.add_argument("new", metavar="NEW", nargs="?", default=LATEST, help="the run to check (default latest)")
    compare.add_argument("--margin", default="0", help="tolerated worsening: a number or a percentage such as 2%%")
    compare.add_argument("--strict", action="store_true",
                         help="also fail metrics not shown to be no worse within the margin (needs a margin > 0)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    report = commands.add_parser(
        "report", help="write an HTML report of RUN, or of NEW compared with BASE (the gate's view)",
        description="One RUN: its experiments' tables, verdicts and figures. Two runs BASE NEW: NEW's, each "
                    "compared with BASE like compare does. The file works offline. Needs the report extra.",
    )
    report.add_argument("runs", metavar="RUN", nargs="+", help="RUN, or BASE NEW")
    report.add_argument("--html", metavar="PATH", required=True, type=Path, help="the HTML file to write")
    report.add_argument("--margin", default="0", help="with BASE NEW: tolerated worsening, as for compare")
    report.add_argument("--strict", action="store_true", help="with BASE NEW: a strict gate, as for compare")
    export = commands.add_parser("export", help="export a run's values to CSV, Parquet or JSON")
    export.add_argument("run", metavar="RUN", nargs="?", default=LATEST)
    export.add_argument("--format", choices=("csv", "parquet", "json"), default="csv")
    export.add_argument("-o", "--output", metavar="PATH", default="-", help="output file (default: stdout)")
    export.add_argument("--experiment", metavar="NODEID", action="append", default=None,
                        help="export only this experiment (repeatable)")
    cache = commands.add_parser("cache", help="the step cache: info, clear, prune")
    action = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = action.add_parser("info", help="entries and size of the step cache, by step")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    action.add_parser("clear", help="remove every entry of the step cache")
    prune = action.add_parser("prune", help="remove the least recently used entries until the cache fits")
    prune.add_argument("--max-size", metavar="SIZE", default=None,
                       help=f"the size to fit in, e.g. 500MB (default: crystallize_cache_size of the project's "
                            f"pytest config file, else {DEFAULT_CACHE_SIZE})")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = _parser().parse_args(argv)
    commands = {"list": _list, "show": _show, "compare": _compare, "export": _export, "report": _report}
    try:
        if args.command == "cache":
            return _cache(args, out)
        code: int = commands[args.command](_store(args), args, out, err)
    except (_Failure, CrystallizeError) as exc:
        err.write(f"{PROGRAM}: error: {exc}\n")
        return EXIT_ERROR
    except OSError as exc:
        err.write(f"{PROGRAM}: error: {exc}\n")
        return EXIT_ERROR
    return code


_LISTING_COLUMNS: Final = tuple(Column(h) for h in ("id", "name", "created", "commit", "branch", "experiments",
                                                     "failed"))


def _listing_cells(run: RunRecord) -> tuple[str, ...]:
    git = run.git
    failed = sum(not e.passed for e in run.experiments.values())
    return (run.id, run.name or "", run.created_at, git.short if git else "", (git.branch or "") if git else "",
            str(len(run.experiments)), str(failed))


def _list(store: DirectoryStore, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    listing = store.listing()
    for problem in listing.problems:
        err.write(f"{PROGRAM}: error: unreadable run: {problem}\n")
    code = EXIT_ERROR if listing.problems else EXIT_OK  # the readable runs are still listed
    if args.json:
        out.write(json.dumps([r.to_dict() for r in listing.runs], indent=2) + "\n")
        return code
    if not listing.runs:
        out.write(f"no saved runs in {store.root} (from {getattr(args, 'storage_source', 'the default')})\n")
        return code
    rows = tuple(_listing_cells(r) for r in listing.runs)
    out.write("\n".join(Table(_LISTING_COLUMNS, rows).lines()) + "\n")
    return code


def _show(store: DirectoryStore, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from pytest_crystallize.core.report.text import summarize, summary_lines

    record = store.find(args.run)
    if args.json:
        out.write(json.dumps(record.to_dict(), indent=2) + "\n")
        return EXIT_OK
    git = record.git
    commit = "none" if git is None else f"{git.commit} on {git.branch or 'a detached HEAD'}"
    lines = [
        f"run {record.label}", f"  saved at   {record.created_at}", f"  location   {record.location}",
        f"  git        {commit}" + (" (dirty)" if git is not None and git.dirty else ""),
        f"  machine    {record.machine.get('node', '?')}, {record.machine.get('system', '?')} "
        f"{record.machine.get('machine', '')}, Python {record.versions.get('python', '?')}",
        f"  versions   {', '.join(f'{k} {v}' for k, v in record.versions.items() if k not in ('python', 'platform'))}",
        f"  command    {' '.join(record.options.get('args', []))}", "",
    ]
    for nodeid, entry in record.experiments.items():
        result = store.result(record, nodeid)
        lines += summary_lines(summarize(result), title=nodeid)
        gated = ", ".join(f"{m} ({spec.get('better')} is better)" for m, spec in entry.gate.items()) or "none"
        lines += [f"  fingerprint {entry.fingerprint}; gated metrics: {gated}", ""]
    out.write("\n".join(lines))
    return EXIT_OK


def _gate_options(args: argparse.Namespace) -> tuple[float, bool]:
    """``--margin`` and ``--strict``, checked: the margin and whether it is relative."""
    try:
        margin, relative = parse_margin(args.margin, "--margin")
    except ConfigurationError as exc:
        raise _Failure(str(exc)) from None
    if args.strict and margin == 0:
        msg = "--strict needs --margin > 0: with margin 0, 'no worse' would mean 'significantly better'"
        raise _Failure(msg)
    return margin, relative


def _gate_reports(
    store: DirectoryStore, base: RunRecord, new: RunRecord, args: argparse.Namespace,
    results: Mapping[str, ExperimentResult] | None = None,
) -> list[GateReport]:
    """Each experiment of ``new`` compared with ``base``, as ``pytest --crystallize-gate`` would.

    With ``results`` (``new``'s, already read), only those experiments.
    """
    margin, relative = _gate_options(args)
    if base.id == new.id:
        msg = f"BASE and NEW are the same run {base.id}; name two different runs"
        raise _Failure(msg)

    def load_base(nodeid: str) -> ExperimentResult:
        # Unreadable input is an error (exit 2), never a regression (exit 1).
        try:
            return store.result(base, nodeid)
        except ResultsError as exc:
            msg = f"base run {base.id}: {exc}"
            raise _Failure(msg) from None

    reports = []
    for nodeid, entry in new.experiments.items():
        if results is not None and nodeid not in results:
            continue
        specs = [GateSpec.from_dict(s) for s in entry.gate.values()]
        result = store.result(new, nodeid) if results is None else results[nodeid]
        reports.append(gate_experiment(
            nodeid, result, entry.definition, specs, base, functools.partial(load_base, nodeid),
            margin=margin, relative=relative, enforced=True, strict=args.strict,
        ))
    return reports


def _compare(store: DirectoryStore, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    _gate_options(args)  # a bad option is reported before any run is looked up
    base, new = store.find(args.base), store.find(args.new)
    reports = _gate_reports(store, base, new, args)
    missing = [n for n in base.experiments if n not in new.experiments]
    failed = any(r.failed for r in reports)
    if args.json:
        document = {"base": base.id, "new": new.id, "failed": failed, "missing_in_new": missing,
                    "experiments": [r.to_dict() for r in reports]}
        out.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    else:
        lines = [f"comparing run {new.label} with base run {base.label}", ""]
        for report in reports:
            lines += [*gate_lines(report), ""]
        lines += [f"not in run {new.id}: {nodeid}" for nodeid in missing]
        lines.append(gate_totals(reports))
        out.write("\n".join(lines) + "\n")
    return EXIT_REGRESSION if failed else EXIT_OK


def _report(store: DirectoryStore, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if len(args.runs) > 2:
        msg = f"report takes RUN, or BASE NEW; got {len(args.runs)} runs: {' '.join(args.runs)}"
        raise _Failure(msg)
    from pytest_crystallize.core.report.plots import require_matplotlib

    try:
        require_matplotlib("report --html")
    except ConfigurationError as exc:
        raise _Failure(str(exc)) from None
    from pytest_crystallize.core.report.saved_runs import saved_run_document

    if args.html.is_dir():  # found now, not after drawing every figure
        msg = f"--html {args.html} is a directory; give a file in it, e.g. --html {args.html / 'report.html'}"
        raise _Failure(msg)
    _gate_options(args)
    records = [store.find(run) for run in args.runs]
    base, new = (None, records[0]) if len(records) == 1 else (records[0], records[1])
    results: dict[str, ExperimentResult] = {}
    unreadable = []
    for nodeid in new.experiments:  # one corrupt experiment leaves the others to report
        try:
            results[nodeid] = store.result(new, nodeid)
        except ResultsError as exc:
            unreadable.append(f"experiment {nodeid!r} of run {new.id} is left out of the report: {exc}; run it again "
                              f"and save a new run (pytest --crystallize --crystallize-save)")
    comparisons = {} if base is None else {r.nodeid: r for r in _gate_reports(store, base, new, args, results)}
    document = saved_run_document(new, results, base=base, comparisons=comparisons)
    try:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(document, encoding="utf-8")
    except OSError as exc:
        msg = f"could not write the HTML report {args.html}: {exc.strerror or exc}; give --html a path you can write"
        raise _Failure(msg) from None
    out.write(f"wrote the HTML report of run {new.label} to {args.html}\n")
    for problem in unreadable:
        err.write(f"{PROGRAM}: error: {problem}\n")
    return EXIT_ERROR if unreadable else EXIT_OK


def _frame(store: DirectoryStore, record: RunRecord, only: Sequence[str] | None) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for nodeid in only or list(record.experiments):
        frame = store.result(record, nodeid).to_dataframe()
        frame.insert(0, "nodeid", nodeid)
        frame["tags"] = [None if t is None else json.dumps(t, sort_keys=True) for t in frame["tags"]]
        frames.append(frame.astype({"condition": str, "metric": str}))
    if not frames:
        return pd.DataFrame(columns=["nodeid", "experiment", "condition", "replicate", "metric", "value", "tags"])
    return pd.concat(frames, ignore_index=True)


def _export(store: DirectoryStore, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    record = store.find(args.run)
    unknown = [n for n in args.experiment or [] if n not in record.experiments]
    if unknown:
        msg = f"run {record.id} has no experiment {unknown[0]!r}; it has: {', '.join(record.experiments)}"
        raise _Failure(msg)
    to_stdout = args.output == "-"
    if args.format == "json":
        nodeids = args.experiment or list(record.experiments)
        document: dict[str, Any] = {"run": record.to_dict(),
                                    "results": {n: store.result(record, n).to_dict() for n in nodeids}}
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
        _ = out.write(text) if to_stdout else Path(args.output).write_text(text, encoding="utf-8")
        return EXIT_OK
    frame = _frame(store, record, args.experiment)
    if args.format == "csv":
        text = frame.to_csv(index=False)
        _ = out.write(text) if to_stdout else Path(args.output).write_text(text, encoding="utf-8")
        return EXIT_OK
    if to_stdout:
        msg = "Parquet is binary: give an output file with -o PATH"
        raise _Failure(msg)
    frame.to_parquet(args.output, index=False)
    return EXIT_OK


def _cache(args: argparse.Namespace, out: IO[str]) -> int:
    """``crystallize cache info|clear|prune``: the step cache of the store (which needs no saved runs)."""
    from pytest_crystallize.core.cache.secret import LocalSecret, secret_path
    from pytest_crystallize.core.cache.sizes import format_size, parse_size
    from pytest_crystallize.core.cache.store import StepCacheStore

    given = args.storage or (Path(os.environ[STORAGE_ENV]) if os.environ.get(STORAGE_ENV) else None)
    root = given if given is not None else find_storage(Path.cwd())[0]
    _, _, config = find_config(Path.cwd())
    given_size = getattr(args, "max_size", None)
    limit_text = given_size or str(config.get("crystallize_cache_size", "")).strip() or DEFAULT_CACHE_SIZE
    try:
        limit = parse_size(limit_text, "--max-size" if given_size else "crystallize_cache_size")
    except ConfigurationError as exc:
        raise _Failure(str(exc)) from None
    store = StepCacheStore(root / CACHE_DIR, limit, LocalSecret())
    if store.root.exists() and not store.root.is_dir():
        msg = (f"{store.root}: is a file, not the step cache's directory; remove it (the cache is made again "
               f"on the next run) or name another store with --storage")
        raise _Failure(msg)
    if args.action == "clear":
        out.write(f"removed {store.clear()} entries from {store.root}\n")
    elif args.action == "prune":
        report = store.prune(limit, fill=1.0)
        out.write(f"removed {report.removed} least recently used entries ({format_size(report.freed)}); "
                  f"{report.entries} entries, {format_size(report.size)} left of {format_size(limit)}\n")
    else:
        info = store.info()
        if args.json:
            document = {"root": str(info.root), "entries": info.entries, "size": info.size, "limit": limit,
                        "steps": {step: {"entries": n, "size": size} for step, (n, size) in info.steps.items()}}
            out.write(json.dumps(document, indent=2) + "\n")
            return EXIT_OK
        lines = [f"step cache {info.root}: {info.entries} entries, {format_size(info.size)} of "
                 f"{format_size(limit)}", f"pickled values are signed with the secret in {secret_path()}"]
        rows = tuple((step, str(n), format_size(size)) for step, (n, size) in info.steps.items())
        if rows:
            lines += ["", *Table((Column("step"), Column("entries"), Column("size")), rows).lines()]
        out.write("\n".join(lines) + "\n")
    return EXIT_OK
