"""The progress bar: drawn from the start of a run, never in captured output, never mixed with live output.

These run pytest in a subprocess, as a user does: there the progress line
writes to its own duplicate of the terminal's file descriptor while pytest's
capture redirects descriptor 1 (in-process runs have no descriptor to
duplicate). ``_screen`` applies the cursor moves to the output, as a
terminal would, to see what a user is left looking at.
"""

from __future__ import annotations

import re

import pytest

from pytest_crystallize.pytest_plugin.progress import progress_text

# Replicate 0 is slow: nothing finishes for a second.
SLOW_START = """
    import sys, time

    def experiment_slow_start(ctx):
        print(f"out r{ctx.replicate}")
        print(f"err r{ctx.replicate}", file=sys.stderr)
        time.sleep(1.0 if ctx.replicate == 0 else 0.25)
        print(f"out r{ctx.replicate} done")
        ctx.metrics.add("x", 1.0)
"""
PRINTED = [line for r in range(3) for line in (f"out r{r}", f"out r{r} done")]
#: What only the progress display writes (the summary's "(3 replicates, seed ...)" is not it).
PROGRESS = re.compile(r"\d+/\d+ replicates|\d+/\d+\]|ETA")


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal of 120 columns, where the full bar fits after the file name."""
    monkeypatch.setenv("COLUMNS", "120")


def _screen(output: str) -> list[str]:
    """The lines a terminal shows after ``output``: text overwrites, CR, LF, cursor left (D), erase to end (K)."""
    rows: list[list[str]] = [[]]
    column = 0
    for token in re.split(r"(\x1b\[\d*[A-Za-z]|\r|\n)", output):
        row = rows[-1]
        if token == "\n":
            rows.append([])
            column = 0
        elif token == "\r":
            column = 0
        elif token.startswith("\x1b["):
            if token.endswith("D"):
                column = max(0, column - int(token[2:-1] or 1))
            elif token.endswith("K"):
                del row[column:]
        else:
            for char in token:
                row[column:column + 1] = [char]
                column += 1
    return ["".join(row) for row in rows]


def _elapsed_values(output: str, pattern: str) -> list[float]:
    return [float(value) for value in re.findall(pattern, output)]


def _run_slow_start(pytester: pytest.Pytester, *args: str) -> str:
    """Run SLOW_START in a subprocess with the progress display on; its output, once it passed."""
    pytester.makepyfile(test_slow=SLOW_START)
    result = pytester.runpytest_subprocess(
        "--crystallize", "--crystallize-replicates=3", "--crystallize-progress=on", "-p", "no:randomly", *args,
    )
    result.assert_outcomes(passed=1)
    return result.stdout.str()


def test_the_bar_ticks_from_the_start_and_captured_output_holds_none_of_it(pytester: pytest.Pytester) -> None:
    out = _run_slow_start(pytester, "-rP")
    # Before any replicate finished: 0 of 3 done, the elapsed time moving on (the thread redraws every 0.2 s).
    ticks = _elapsed_values(out, r"\] 0/3 replicates, (\d+\.\d)s elapsed, ETA \?")
    assert len(ticks) >= 3
    assert ticks == sorted(ticks)
    assert ticks[-1] >= 0.6
    assert re.search(r"\[=+>? *\] [12]/3 replicates, .* elapsed, ETA \d", out)  # later: rate and ETA
    line = next(row for row in _screen(out) if row.startswith("test_slow.py"))
    assert re.fullmatch(r"test_slow\.py \. +\[100%\]", line)  # erased before pytest wrote the outcome
    # The bar was drawn while pytest captured the experiment's output; none of it is in there, and all of that is.
    lines = out.splitlines()
    stdout_at = lines.index(next(line for line in lines if "Captured stdout call" in line))
    stderr_at = lines.index(next(line for line in lines if "Captured stderr call" in line))
    assert lines[stdout_at + 1:stderr_at] == PRINTED
    assert lines[stderr_at + 1:stderr_at + 4] == ["err r0", "err r1", "err r2"]


def test_live_output_under_s_is_neither_split_nor_erased_by_the_bar(pytester: pytest.Pytester) -> None:
    out = _run_slow_start(pytester, "-s")
    # The bar was on screen between the user's lines: before "out r0 done" (replicate 0 takes a second).
    assert 0 <= out.find("0/3 replicates") < out.find("out r0 done")
    screen = _screen(out)
    assert not [row for row in screen if PROGRESS.search(row)]  # every bar erased
    # Every line the experiment printed is whole, on a line of its own, in order (the first after the file name).
    first = next(i for i, row in enumerate(screen) if row.startswith("test_slow.py "))
    shown = [screen[first].removeprefix("test_slow.py "), *screen[first + 1:first + len(PRINTED)]]
    assert shown == PRINTED
    assert screen[first + len(PRINTED)] == "."


def test_under_xdist_the_controller_shows_the_workers_progress(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_slow=SLOW_START, test_other=SLOW_START.replace("slow_start", "other"))
    result = pytester.runpytest_subprocess(
        "-n", "2", "--crystallize", "--crystallize-replicates=3", "--crystallize-progress=on", "-p", "no:randomly",
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    # Each worker's experiment, labelled with the worker, from its start (nothing finished yet).
    assert re.search(r"gw[01] (\[0/3, ETA \?\]|\[ +\] 0/3 replicates)", out)
    assert {"gw0", "gw1"} <= set(re.findall(r"(gw[01]) \[", out))
    assert re.search(r"gw[01] \[[12]/3, ETA \d", out) or re.search(r"gw[01] \[=+>? *\] [12]/3 replicates", out)
    assert not [row for row in _screen(out) if PROGRESS.search(row)]  # all erased


def test_the_bar_shrinks_to_the_room_left_on_the_line() -> None:
    # By hand: 5 of 20 in 2 s is 2.5/s; 15 left take 6 s; 5/20 of 20 cells filled, then the head.
    full = " [=====>              ] 5/20 replicates, 2.5/s, 2.0s elapsed, ETA 6.0s"
    assert progress_text(5, 20, 2.0) == full
    assert progress_text(5, 20, 2.0, room=len(full) - 1) == " [5/20 replicates, 2.5/s, 2.0s elapsed, ETA 6.0s]"
    assert progress_text(5, 20, 2.0, room=20) == " [5/20, ETA 6.0s]"
    assert progress_text(5, 20, 2.0, room=10) == " [5/20]"
    assert progress_text(5, 20, 2.0, room=3) == ""
    assert progress_text(20, 20, 4.0, label="gw1").startswith(" gw1 [====================] 20/20 replicates")
