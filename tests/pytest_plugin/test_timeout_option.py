"""``timeout=`` on the marker, ``--crystallize-timeout`` and ini ``crystallize_timeout`` under pytest."""

from __future__ import annotations

import pytest

SLOW = """
    import time
    import pytest

    @pytest.mark.experiment(replicates=4{marker})
    def experiment_slow(ctx):
        if ctx.replicate == 1:
            time.sleep(30)
        ctx.metrics.add("x", 1.0)

    def test_plain():
        pass
"""


@pytest.mark.parametrize(
    ("marker", "args", "ini"),
    [(", timeout=0.3", (), ""), ("", ("--crystallize-timeout", "0.3"), ""), ("", (), "crystallize_timeout = 0.3")],
    ids=["marker", "option", "ini"],
)
def test_a_slow_replicate_is_stopped_and_named(pytester: pytest.Pytester, marker: str, args: tuple[str, ...],
                                               ini: str) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(SLOW.format(marker=marker))
    result = pytester.runpytest("--crystallize", *args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*replicate 1*ReplicateTimeout*timeout of 0.3 s*"])


def test_the_option_overrides_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SLOW.format(marker=", timeout=60"))
    result = pytester.runpytest("--crystallize", "--crystallize-timeout", "0.3")
    result.stdout.fnmatch_lines(["*ReplicateTimeout*"])


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_timeout_option_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--crystallize", f"--crystallize-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--crystallize-timeout must be a number of seconds > 0*"])
