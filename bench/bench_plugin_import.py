"""What the installed plugin costs a pytest run without experiments: CPU time, with it and without.

Every pytest run of every user who installs pytest-crystallize loads the
plugin, experiments or not. This runs the same suite of plain tests (no
experiment) in fresh pytest processes, two ways:

* **with** the plugin (loaded from its entry point, as for a user);
* **without** it: ``-p no:crystallize``.

Every other installed pytest plugin (pytest-xdist, pytest-asyncio, ...) and
the cache provider are disabled in both, so only our plugin differs. The two
variants alternate within each round, in ABBA order (A first in even rounds,
B first in odd ones), so a drift of the machine's speed hits both alike; one
warm-up round (not counted) fills the OS file cache and the bytecode cache
first. The children write bytecode to a cache in the temporary directory
(``PYTHONPYCACHEPREFIX``; ``PYTHONDONTWRITEBYTECODE`` is dropped), as an
installed package has its ``.pyc`` files: otherwise every run would compile
an editable checkout's modules from source again. ``PYTEST_ADDOPTS`` is
dropped too, so both variants get exactly the options below. Each run's CPU time is the growth of
``resource.getrusage(RUSAGE_CHILDREN)`` (user + system) across it; its peak
RSS comes from ``os.wait4``. Figures: medians with min-max and the
interquartile range, and the median of the per-round CPU ratios
with/without. Target: at most 1.03.

CPU time on a busy machine is noisy (a round's ratio can stray by 10-20 %);
``--instructions`` also counts each variant's instructions once under
valgrind's callgrind, which no other load on the machine changes.

Usage::

    python bench/bench_plugin_import.py               # 2,000 tests, 7 rounds
    python bench/bench_plugin_import.py --quick       # 500 tests, 3 rounds
    python bench/bench_plugin_import.py --instructions   # also count instructions (valgrind, ~1 min)
    PYTHONPATH=/path/to/other/checkout python bench/bench_plugin_import.py   # measure another checkout

Unix only (``resource``, ``os.wait4``). The children inherit the
environment, so ``PYTHONPATH`` picks the checkout whose plugin is measured.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

TESTS = 2_000
ROUNDS = 7
QUICK_TESTS = 500
QUICK_ROUNDS = 3
TESTS_PER_MODULE = 100
PLUGIN = "crystallize"
TARGET_RATIO = 1.03


@dataclass(frozen=True, slots=True)
class Run:
    """One pytest process: CPU seconds (user + system), wall seconds, peak RSS in MiB."""

    cpu: float
    wall: float
    rss_mib: float


def write_suite(root: Path, tests: int) -> None:
    """An empty pytest.ini (so ``root`` is the rootdir) and ``tests`` plain test functions under ``root/tests``."""
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (root / "tests").mkdir()
    for start in range(0, tests, TESTS_PER_MODULE):
        count = min(TESTS_PER_MODULE, tests - start)
        body = "".join(f"def test_{start + i}():\n    assert {start + i} >= 0\n\n\n" for i in range(count))
        (root / "tests" / f"test_plain_{start // TESTS_PER_MODULE:03d}.py").write_text(body, encoding="utf-8")


def other_plugins() -> list[str]:
    """``-p no:NAME`` for every installed pytest plugin but ours, and the cache provider."""
    names = sorted({point.name for point in metadata.entry_points(group="pytest11")} - {PLUGIN})
    return [arg for name in ["cacheprovider", *names] for arg in ("-p", f"no:{name}")]


def child_environment(root: Path) -> dict[str, str]:
    """This environment, with bytecode written to (and read from) a cache under ``root``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS")}
    env["PYTHONPYCACHEPREFIX"] = str(root / ".pycache")
    return env


def run_pytest(root: Path, args: Sequence[str], tests: int) -> Run:
    """Run pytest once on the suite; check that every test passed."""
    command = [sys.executable, "-m", "pytest", "-q", *args, str(root / "tests")]
    output = root / "output.txt"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with output.open("wb") as sink:
        child = subprocess.Popen(command, cwd=root, stdout=sink, stderr=subprocess.STDOUT,
                                 env=child_environment(root))
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    text = output.read_text(encoding="utf-8", errors="replace")
    if child.returncode != 0 or f"{tests} passed" not in text:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise RuntimeError(f"pytest failed (exit code {child.returncode}): {' '.join(command)}\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024  # macOS reports bytes
    return Run(cpu=cpu, wall=wall, rss_mib=rss_kib / 1024)


def count_instructions(root: Path, args: Sequence[str], tests: int) -> int:
    """Instructions one pytest run executes, counted by valgrind's callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, "-m", "pytest", "-q", *args, str(root / "tests")]
    child = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False,
                           env=child_environment(root))
    collected = re.search(r"Collected : (\d+)", child.stderr)
    if child.returncode != 0 or f"{tests} passed" not in child.stdout or collected is None:
        raise RuntimeError(f"callgrind run failed (exit code {child.returncode}): {child.stderr[-2000:]}")
    return int(collected.group(1))


def spread(values: Sequence[float], fmt: str) -> str:
    """``median [min-max] IQR q1-q3`` of ``values``."""
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return (f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}] "
            f"IQR {q1:{fmt}}-{q3:{fmt}}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TESTS} tests, {QUICK_ROUNDS} rounds")
    parser.add_argument("--tests", type=int, default=None, help=f"plain tests in the suite (default {TESTS})")
    parser.add_argument("--rounds", type=int, default=None, help=f"measured rounds (default {ROUNDS})")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each variant's instructions once under valgrind (callgrind)")
    args = parser.parse_args(argv)
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH")
    tests = args.tests or (QUICK_TESTS if args.quick else TESTS)
    rounds = max(1, args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS))
    others = other_plugins()
    variants = {"with crystallize": others, "-p no:crystallize": [*others, "-p", f"no:{PLUGIN}"]}
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    instructions: dict[str, int] = {}

    with tempfile.TemporaryDirectory(prefix="bench_plugin_import_") as directory:
        root = Path(directory)
        write_suite(root, tests)
        for extra in variants.values():  # warm-up: file cache, bytecode, rewritten test modules
            run_pytest(root, extra, tests)
        for index in range(rounds):
            order = list(variants) if index % 2 == 0 else list(reversed(variants))
            for name in order:
                runs[name].append(run_pytest(root, variants[name], tests))
            print(f"  round {index + 1}/{rounds}: " + ", ".join(
                f"{name} {runs[name][-1].cpu:.3f}s CPU" for name in variants), flush=True)
        if args.instructions:
            instructions = {name: count_instructions(root, extra, tests) for name, extra in variants.items()}

    with_, without = runs["with crystallize"], runs["-p no:crystallize"]
    ratios = [a.cpu / b.cpu for a, b in zip(with_, without, strict=True)]
    rss_deltas = [a.rss_mib - b.rss_mib for a, b in zip(with_, without, strict=True)]
    print(f"\nplugin cost: {tests:,} plain tests, {rounds} rounds interleaved (ABBA) after 1 warm-up; "
          f"pytest {metadata.version('pytest')}, pytest-crystallize {metadata.version('pytest-crystallize')}, "
          f"Python {sys.version.split()[0]}")
    print(f"  disabled in both: {' '.join(others)}")
    print(f"  {'variant':<20} {'CPU s: median [min-max] IQR':<38} {'wall s: median':>14} {'peak RSS MiB':>13}")
    for name, measured in runs.items():
        print(f"  {name:<20} {spread([r.cpu for r in measured], '.3f'):<38} "
              f"{statistics.median(r.wall for r in measured):>14.3f} "
              f"{statistics.median(r.rss_mib for r in measured):>13.1f}")
    ratio = statistics.median(ratios)
    medians = statistics.median(r.cpu for r in with_) / statistics.median(r.cpu for r in without)
    print(f"  CPU ratio with/without: median of rounds {ratio:.3f} "
          f"[{min(ratios):.3f}-{max(ratios):.3f}]; ratio of medians {medians:.3f}")
    print(f"  CPU difference: {statistics.median(a.cpu - b.cpu for a, b in zip(with_, without, strict=True)):+.3f} s "
          f"per run (median of rounds)")
    print(f"  peak RSS difference: {statistics.median(rss_deltas):+.1f} MiB "
          f"[{min(rss_deltas):+.1f} to {max(rss_deltas):+.1f}] (median of rounds)")
    if instructions:
        counted = instructions["with crystallize"] / instructions["-p no:crystallize"]
        extra = instructions["with crystallize"] - instructions["-p no:crystallize"]
        print(f"  instructions (callgrind, one run each): with {instructions['with crystallize']:,}, "
              f"without {instructions['-p no:crystallize']:,}; ratio {counted:.4f} ({extra / 1e6:+.1f} M)")
    ok = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(f"\ntarget: CPU ratio with/without <= {TARGET_RATIO}: {ratio:.3f} -> {ok}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
