"""Engine overhead per replicate-step: pytest-crystallize vs crystallize-ml vs a bare loop.

The same trivial experiment runs three ways, serially, in one invocation:

* a datasource returning the replicate index, two pipeline steps that each
  record one metric (step 1 records ``a``, step 2 records ``b``), a baseline
  and one treatment that changes a parameter (``k``: 1 -> 2), N replicates;
* (1) this project's ``run_experiment`` with ``@data_source`` / ``@pipeline_step()``;
* (2) crystallize-ml 0.27.0 (the original framework), installed into its own
  virtual environment under ``bench/.venvs/`` and run in a subprocess;
* (3) a bare Python loop calling plain functions doing the same arithmetic and
  appending the metrics to lists.

Overhead per replicate-step = (framework time - bare loop time) / (replicates x
conditions x steps), the bare loop timed in the same process. The variants run
in interleaved rounds in one invocation (ours, then crystallize-ml, then
crystallize-ml, then ours, ...; crystallize-ml in one long-lived child process
that runs a round when asked), and every figure is the median of the rounds
with its spread, in wall time and in the process's CPU time (which a shared
machine's other load disturbs less). The target is a ratio, which a shared
machine holds better than microseconds: crystallize-ml's overhead per replicate-step is at least
40x ours (the median of the per-round ratios, in wall time).

Usage::

    python bench/bench_engine.py                 # 2,000 replicates, 15 rounds
    python bench/bench_engine.py --quick         # 300 replicates, 3 rounds
    python bench/bench_engine.py --skip-crystallize-ml   # offline
    python bench/bench_engine.py --profile       # also cProfile our run, top 15 by tottime

crystallize-ml run settings (its defaults, except as noted): serial execution
(its default ``SerialExecution``, progress bar off, the default), the three
default plugins passed explicitly so they can be configured -- ``ArtifactPlugin``
pointed at a temporary directory (it writes results.json per condition at the end
of the run), ``SeedPlugin`` with a fixed seed and its default seed function
(seeds ``random`` and ``numpy.random`` per replicate and condition), ``LoggingPlugin``
at WARNING level so the per-replicate INFO line ("Cache hit rate ...") is not
formatted and printed to stderr 2 x N times. numpy (the version this project's
venv has) is installed next to crystallize-ml: without it, its default seed
function retries ``import numpy`` on every replicate (~60 µs each), which would
inflate its figure unfairly. A second crystallize-ml row runs with a no-op seed
function, to show its engine cost without seeding (ours seeds nothing unless a
step asks for ``ctx.seed`` / ``ctx.rng``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CRYSTALLIZE_ML_VERSION = "0.27.0"
VENV_DIR = BENCH_DIR / ".venvs" / f"crystallize-ml-{CRYSTALLIZE_ML_VERSION}"

REPLICATES = 2_000
QUICK_REPLICATES = 300
# On a shared 2-core VM one round's ratio swings by a quarter either way (a neighbour's burst slows
# one variant's run and not the other's): the median of 15 rounds is steadier than that of 7.
ROUNDS = 15
QUICK_ROUNDS = 3
CONDITIONS = 2  # baseline + one treatment
STEPS = 2
K_VALUES = {"baseline": 1, "t": 2}  # the parameter the treatment changes
SEED = 12_345

TARGET_RATIO = 40.0  # crystallize-ml overhead / ours, per replicate-step


# -- the work, shared by every variant ------------------------------------------
# The bare loop uses these plain functions; the framework variants' datasource
# and steps do the same arithmetic through the framework's API. The crystallize-ml
# child imports this module (it must not import pytest_crystallize at top level).

def work_source(replicate: int) -> int:
    return replicate


def work_step_one(data: int, k: int) -> int:
    return data * k + 1


def work_step_two(data: int) -> float:
    return data * 0.5


def bare_loop(replicates: int) -> dict[str, dict[str, list[float]]]:
    """Every condition and replicate: datasource, two steps, metrics appended to lists."""
    out: dict[str, dict[str, list[float]]] = {}
    for condition, k in K_VALUES.items():
        a: list[float] = []
        b: list[float] = []
        for r in range(replicates):
            x = work_step_one(work_source(r), k)
            a.append(x)
            b.append(work_step_two(x))
        out[condition] = {"a": a, "b": b}
    return out


def checksums(metrics: dict[str, dict[str, Sequence[float]]]) -> dict[str, dict[str, list[float]]]:
    """``{condition: {metric: [count, sum]}}``: proves every variant did the same work."""
    return {
        c: {m: [len(v), float(sum(v))] for m, v in sorted(by_metric.items())}
        for c, by_metric in sorted(metrics.items())
    }


def fixed_cost_note(seconds: float, units: int) -> str:
    return f"{1e3 * seconds:.2f} ms per run = {1e6 * seconds / units:.3f} µs per replicate-step here"


def time_once(run: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """``(wall seconds, CPU seconds of this process)`` of one call of ``run``, after a garbage collection; its output.

    Wall time is what a user waits (crystallize-ml's file writes included);
    CPU time leaves out waiting for a core on a shared machine.
    """
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """``median [min-max]`` of ``values``."""
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


# -- (1) this project -----------------------------------------------------------

def build_ours() -> Callable[..., Any]:
    """Return ``run(replicates, with_hypothesis)`` for pytest-crystallize."""
    from pytest_crystallize import Treatment, data_source, hypothesis, pipeline_step, run_experiment

    @data_source
    def source(ctx: Any) -> int:
        return ctx.get("replicate")  # type: ignore[no-any-return]

    @pipeline_step()
    def step_one(data: int, ctx: Any, k: int = 1) -> int:
        x = data * k + 1
        ctx.metrics.add("a", x)
        return x

    @pipeline_step()
    def step_two(data: int, ctx: Any) -> float:
        y = data * 0.5
        ctx.metrics.add("b", y)
        return y

    def experiment(source: int, ctx: Any) -> None:
        step_two(step_one(source, ctx), ctx)

    treatments = [Treatment("t", {"k": K_VALUES["t"]})]
    one_hypothesis = [hypothesis("a", direction="maximize")]

    def run(replicates: int, with_hypothesis: bool = False) -> Any:
        return run_experiment(
            experiment, name="bench_engine", replicates=replicates, treatments=treatments,
            seed=SEED, datasources={"source": source},
            hypotheses=one_hypothesis if with_hypothesis else (),
        )

    return run


def our_checksums(result: Any) -> dict[str, dict[str, list[float]]]:
    if result.errors:
        raise RuntimeError(f"pytest-crystallize run had errors: {result.errors[0].headline}")
    metrics = {
        c: {m: result.select(m, c)[1].tolist() for m in result.metrics} for c in result.conditions
    }
    return checksums(metrics)


def profile_ours(run: Callable[..., Any], replicates: int, runs: int, top: int = 15) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    for _ in range(runs):
        profiler.enable()
        run(replicates)
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    print(f"\ncProfile of {runs} run_experiment calls ({replicates} replicates each; the profiler"
          f" inflates per-call cost; total tottime {total:.3f}s) -- top {top} by tottime:")
    print(f"  {'ncalls':>8} {'tottime s':>9} {'%':>5} {'µs/call':>8} {'cumtime s':>9}  function")
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in rows[:top]:
        where = _short_path(filename)
        label = f"{where}:{line}({name})" if line else name
        print(f"  {ncalls:>8} {tottime:>9.4f} {100 * tottime / total:>5.1f} "
              f"{1e6 * tottime / ncalls:>8.3f} {cumtime:>9.4f}  {label}")


def _short_path(filename: str) -> str:
    for marker in ("pytest_crystallize/", "site-packages/", "lib/python"):
        index = filename.find(marker)
        if index >= 0:
            return filename[index:]
    return os.path.basename(filename)


# -- (2) crystallize-ml, in its own venv ----------------------------------------

CHILD_SCRIPT = r'''
import json, os, sys, time, gc
sys.path.insert(0, sys.argv[1])
replicates, workdir = int(sys.argv[2]), sys.argv[3]
os.chdir(workdir)  # anything written to a relative path lands in the temp dir

from importlib import metadata
from bench_engine import K_VALUES, SEED, bare_loop, checksums, time_once
from crystallize import (
    ArtifactPlugin, Experiment, LoggingPlugin, SeedPlugin, Treatment, data_source, pipeline_step,
)
from crystallize.plugins.plugins import default_seed_function


@data_source
def source(ctx):
    return ctx.get("replicate")


@pipeline_step()
def step_one(data, ctx, k=1):
    x = data * k + 1
    ctx.metrics.add("a", x)
    return x


@pipeline_step()
def step_two(data, ctx):
    y = data * 0.5
    ctx.metrics.add("b", y)
    return y


def no_seeding(seed):
    pass


def run(replicates, seed_fn=default_seed_function):
    experiment = (
        Experiment.builder("bench_engine")
        .datasource(source())
        .add_step(step_one())
        .add_step(step_two())
        .plugins([
            ArtifactPlugin(root_dir=os.path.join(workdir, "data")),
            SeedPlugin(seed=SEED, seed_fn=seed_fn),
            LoggingPlugin(log_level="WARNING"),
        ])
        .treatments([Treatment("t", {"k": K_VALUES["t"]})])
        .replicates(replicates)
        .build()
    )
    return experiment.run()


run(min(replicates, 50))  # warm-up (imports, caches)
print(json.dumps({"version": metadata.version("crystallize-ml"), "numpy": metadata.version("numpy"),
                  "python": sys.version.split()[0]}), flush=True)
for line in sys.stdin:  # one measured round per line read, so the parent interleaves the rounds
    bare, _ = time_once(lambda: bare_loop(replicates))
    seeded, result = time_once(lambda: run(replicates))
    unseeded, _ = time_once(lambda: run(replicates, no_seeding))
    if result.errors:
        raise SystemExit(f"crystallize-ml run had errors: {next(iter(result.errors.values()))!r}")
    metrics = {"baseline": result.metrics.baseline.metrics}
    metrics.update({name: m.metrics for name, m in result.metrics.treatments.items()})
    print(json.dumps({"seconds": seeded, "unseeded_seconds": unseeded, "bare_seconds": bare,
                      "checksums": checksums(metrics)}), flush=True)
'''


def _venv_python() -> Path:
    return VENV_DIR / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _requirements() -> list[str]:
    """crystallize-ml, plus numpy at this venv's version (its seed function seeds numpy)."""
    from importlib import metadata

    return [f"crystallize-ml=={CRYSTALLIZE_ML_VERSION}", f"numpy=={metadata.version('numpy')}"]


def _installed(python: Path) -> list[str] | None:
    """``name==version`` of crystallize-ml and numpy in the venv, or None."""
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "from importlib import metadata; "
         "print(*(f'{n}=={metadata.version(n)}' for n in ('crystallize-ml', 'numpy')))"],
        capture_output=True, text=True, check=False,
    )
    return probe.stdout.split() if probe.returncode == 0 else None


def ensure_crystallize_ml() -> Path:
    """Create (or reuse) the venv with crystallize-ml installed; return its python."""
    python = _venv_python()
    wanted = _requirements()
    if _installed(python) == wanted:
        return python
    if not python.exists():
        print(f"creating {VENV_DIR} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
    print(f"installing {' '.join(wanted)} into {VENV_DIR} ...", flush=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *wanted],
        capture_output=True, text=True, check=False,
    )
    if install.returncode != 0 or _installed(python) != wanted:
        tail = "\n".join((install.stdout + install.stderr).strip().splitlines()[-15:])
        raise RuntimeError(
            f"could not install {' '.join(wanted)} into {VENV_DIR} "
            f"(pip exit code {install.returncode}). Is PyPI reachable? Rerun with "
            f"--skip-crystallize-ml to benchmark offline.\n--- pip output (tail) ---\n{tail}"
        )
    return python


class CrystallizeMl:
    """crystallize-ml in a long-lived child process that runs one measured round per :meth:`round` call."""

    def __init__(self, python: Path, replicates: int) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="bench_engine_")
        workdir = self._directory.name
        script = Path(workdir) / "crystallize_ml_child.py"
        script.write_text(CHILD_SCRIPT, encoding="utf-8")
        env = {**os.environ, "CRYSTALLIZE_CACHE_DIR": str(Path(workdir) / ".cache")}
        env.pop("PYTHONPATH", None)
        self._child = subprocess.Popen(
            [str(python), str(script), str(BENCH_DIR), str(replicates), workdir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.about = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            self._child.wait()
            error = self._child.stderr.read() if self._child.stderr else ""
            raise RuntimeError(f"crystallize-ml child failed (exit code {self._child.returncode}):\n{error}")
        return json.loads(line)  # type: ignore[no-any-return]

    def round(self) -> dict[str, Any]:
        assert self._child.stdin is not None
        self._child.stdin.write("round\n")
        self._child.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait()
        self._directory.cleanup()


# -- report ---------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPLICATES} replicates, {QUICK_ROUNDS} rounds")
    parser.add_argument("--replicates", type=int, default=None, help="override the replicate count")
    parser.add_argument("--rounds", type=int, default=None, help=f"interleaved rounds (default {ROUNDS})")
    parser.add_argument("--skip-crystallize-ml", action="store_true",
                        help="do not install or run crystallize-ml (offline use)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile our runs and print the top 15 functions by tottime")
    args = parser.parse_args(argv)
    replicates = args.replicates or (QUICK_REPLICATES if args.quick else REPLICATES)
    rounds = max(1, args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS))
    units = replicates * CONDITIONS * STEPS

    run_ours = build_ours()
    run_ours(min(replicates, 50), True)  # warm-up: imports, scipy, version metadata
    expected = checksums(bare_loop(replicates))

    theirs: CrystallizeMl | None = None
    install_error = None
    if not args.skip_crystallize_ml:
        try:
            theirs = CrystallizeMl(ensure_crystallize_ml(), replicates)
        except RuntimeError as exc:
            install_error = str(exc)

    def us(seconds: float) -> float:
        return 1e6 * seconds / units

    Clocks = tuple[float, float]  # (wall, CPU) seconds
    ours: dict[str, list[Clocks]] = {"bare": [], "run": [], "hypothesis": [], "fixed": []}
    their: dict[str, list[Clocks]] = {"bare": [], "run": [], "unseeded": []}

    def our_round() -> None:
        bare, _ = time_once(lambda: bare_loop(replicates))
        seconds, result = time_once(lambda: run_ours(replicates))
        if our_checksums(result) != expected:
            raise RuntimeError(f"pytest-crystallize recorded other values: {our_checksums(result)} != {expected}")
        ours["bare"].append(bare)
        ours["run"].append(seconds)
        ours["hypothesis"].append(time_once(lambda: run_ours(replicates, True))[0])
        ours["fixed"].append(time_once(lambda: run_ours(1))[0])

    def their_round() -> None:
        assert theirs is not None
        measured = theirs.round()
        if measured["checksums"] != expected:
            raise RuntimeError(f"crystallize-ml recorded other values: {measured['checksums']} != {expected}")
        for key, field in (("bare", "bare_seconds"), ("run", "seconds"), ("unseeded", "unseeded_seconds")):
            their[key].append(tuple(measured[field]))  # type: ignore[arg-type]  # a JSON pair

    def over(runs: Sequence[Clocks], bare: Sequence[Clocks], clock: int) -> list[float]:
        return [us(r[clock] - b[clock]) for r, b in zip(runs, bare, strict=True)]

    try:
        for index in range(rounds):
            order = [our_round, their_round] if index % 2 == 0 else [their_round, our_round]
            for measure in order:
                if measure is our_round or theirs is not None:
                    measure()
            print(f"  round {index + 1}/{rounds}: ours {over(ours['run'], ours['bare'], 0)[-1]:.2f} µs"
                  + ("" if theirs is None else f", crystallize-ml {over(their['run'], their['bare'], 0)[-1]:.2f} µs")
                  + " overhead per replicate-step (wall)", flush=True)
    finally:
        if theirs is not None:
            theirs.close()

    print(f"\nengine overhead: {replicates} replicates x {CONDITIONS} conditions x {STEPS} steps "
          f"= {units} replicate-steps, serial; {rounds} interleaved rounds, median [min-max]; "
          f"Python {sys.version.split()[0]}")
    ratio = None
    for clock, clock_name in ((0, "wall time"), (1, "CPU time")):
        print(f"\n  {clock_name:<34} {'µs/rep-step':>22} {'overhead µs/rep-step':>24}")

        def row(label: str, runs: Sequence[Clocks], bare: Sequence[Clocks], clock: int = clock) -> list[float]:
            overhead = over(runs, bare, clock)
            print(f"  {label:<34} {spread([us(x[clock]) for x in runs]):>22} {spread(overhead):>24}")
            return overhead

        print(f"  {'bare Python loop':<34} {spread([us(x[clock]) for x in ours['bare']]):>22} {'-':>24}")
        our_over = row("pytest-crystallize", ours["run"], ours["bare"])
        row("pytest-crystallize + 1 hypothesis", ours["hypothesis"], ours["bare"])
        if theirs is not None:
            about = theirs.about
            their_over = row(f"crystallize-ml {about['version']}", their["run"], their["bare"])
            unseeded_over = row("crystallize-ml, no-op seed_fn", their["unseeded"], their["bare"])
            ratios = [t / o for t, o in zip(their_over, our_over, strict=True)]
            unseeded_ratios = [t / o for t, o in zip(unseeded_over, our_over, strict=True)]
            if clock == 0:
                ratio = statistics.median(ratios)
            print(f"  ratio crystallize-ml overhead / ours, per round: {spread(ratios, '.1f')}x "
                  f"({spread(unseeded_ratios, '.1f')}x with its seeding switched off)")
    if theirs is not None:
        print(f"  (crystallize-ml figures subtract the bare loop timed in its own process; "
              f"Python {theirs.about['python']}, numpy {theirs.about['numpy']})")
    fixed = statistics.median(x[0] for x in ours["fixed"])
    print(f"  pytest-crystallize fixed cost (1 replicate, wall): {fixed_cost_note(fixed, units)}")

    if ratio is not None:
        ok = "PASS" if ratio >= TARGET_RATIO else "MISS"
        print(f"\ntarget: crystallize-ml overhead >= {TARGET_RATIO:.0f}x ours per replicate-step (wall): "
              f"{ratio:.1f}x -> {ok}")
    elif args.skip_crystallize_ml:
        print(f"\ntarget: crystallize-ml overhead >= {TARGET_RATIO:.0f}x ours: skipped (--skip-crystallize-ml)")
    else:
        print(f"\ntarget: crystallize-ml overhead >= {TARGET_RATIO:.0f}x ours: not measured")

    if args.profile:
        profile_ours(run_ours, replicates, rounds)
    if install_error is not None:
        print(f"\nERROR: {install_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
