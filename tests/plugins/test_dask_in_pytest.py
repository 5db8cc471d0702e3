"""``--crystallize-dask`` and its ini twin: a pytest run whose experiments run on a real Dask cluster."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

CONFTEST = """
    from pytest_crystallize import data_source, hookimpl

    @data_source
    def draw(ctx):
        return float(ctx.rng.normal())

    class Doubler:
        # A per-replicate hook: the plugin itself must reach the workers.
        @hookimpl
        def crystallize_replicate_after(self, experiment, ctx, error):
            ctx.metrics.add("doubled", 2.0 * ctx.replicate)

    def pytest_crystallize_plugins(item, experiment):
        return [Doubler()]
"""

EXPERIMENTS = """
    import pytest
    from pytest_crystallize import Treatment, hypothesis
    from steps import bump

    @pytest.mark.experiment(replicates=16, seed=5, treatments=[Treatment("up", {"delta": 1.0})])
    @hypothesis(metric="value", direction="maximize", test="paired_t")
    def experiment_on_cluster(draw, ctx):
        ctx.metrics.add("value", bump(draw, ctx.get("delta", 0.0)))

    @pytest.mark.experiment(replicates=6, seed=9)
    def experiment_with_a_broken_replicate(draw, ctx):
        if ctx.replicate == 4:
            raise ValueError("replicate four is broken")
        ctx.metrics.add("value", draw)
"""

STEPS = """
    def bump(x, delta):
        return x + delta
"""


def _project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cluster=EXPERIMENTS, steps=STEPS)


def _summaries(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    out = {}
    for entry in document["experiments"]:
        summary = dict(entry["summary"])
        summary.pop("execution", None)
        out[entry["nodeid"]] = (entry["outcome"], summary)
    return out


def test_the_option_runs_experiments_on_the_cluster_with_a_serial_run_s_numbers(
    pytester: pytest.Pytester, dask_cluster_module: Any
) -> None:
    _project(pytester)
    serial = pytester.runpytest_subprocess("--crystallize", "-p", "no:xdist", "--crystallize-json=serial.json")
    serial.assert_outcomes(passed=1, failed=1)
    address = dask_cluster_module.address
    result = pytester.runpytest_subprocess(
        "--crystallize", "-p", "no:xdist", "-v", f"--crystallize-dask={address}", "--crystallize-json=dask.json",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        f"*execution: DaskExecution: 32 replicate tasks in * chunks of up to * on the 2 worker threads of the "
        f"Dask cluster at {address}",
        "*ValueError*replicate four is broken*",
    ])
    on_dask = _summaries(pytester.path / "dask.json")
    assert on_dask == _summaries(pytester.path / "serial.json")
    cluster = on_dask["test_cluster.py::experiment_on_cluster"][1]
    assert {row["metric"] for row in cluster["rows"]} == {"value", "doubled"}


def test_the_ini_twin_names_the_cluster_and_without_v_no_execution_line(
    pytester: pytest.Pytester, dask_cluster_module: Any
) -> None:
    _project(pytester)
    pytester.makeini(f"[pytest]\ncrystallize_dask = {dask_cluster_module.address}\n")
    result = pytester.runpytest_subprocess("--crystallize", "-p", "no:xdist", "--crystallize-json=dask.json")
    result.assert_outcomes(passed=1, failed=1)
    assert "execution:" not in result.stdout.str()
    summary = json.loads((pytester.path / "dask.json").read_text())["experiments"][0]["summary"]
    assert summary["execution"][0].startswith("DaskExecution: ")


def test_a_bad_address_is_a_usage_error_naming_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--crystallize-dask=", "-p", "no:xdist")
    result.stderr.fnmatch_lines(["*--crystallize-dask must be a Dask scheduler address such as tcp://host:8786*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_nested_conftests_of_the_same_module_name_both_reach_the_workers(
    pytester: pytest.Pytester, dask_cluster_module: Any
) -> None:
    # Without __init__.py files pytest imports every conftest.py as the module "conftest":
    # the datasource of the outer one and the plugin of the inner one must both arrive.
    pytester.makeconftest("""
        from pytest_crystallize import data_source

        @data_source
        def outer(ctx):
            return float(ctx.rng.normal())
    """)
    inner = pytester.mkdir("inner")
    (inner / "conftest.py").write_text(textwrap.dedent("""
        from pytest_crystallize import hookimpl

        class Tripler:
            @hookimpl
            def crystallize_replicate_after(self, experiment, ctx, error):
                ctx.metrics.add("tripled", 3.0 * ctx.replicate)

        def pytest_crystallize_plugins(item, experiment):
            return [Tripler()]
    """))
    (inner / "test_inner.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.experiment(replicates=6, seed=2)
        def experiment_inner(outer, ctx):
            ctx.metrics.add("value", outer)
    """))
    serial = pytester.runpytest_subprocess("--crystallize", "-p", "no:xdist", "--crystallize-json=serial.json")
    serial.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess(
        "--crystallize", "-p", "no:xdist", f"--crystallize-dask={dask_cluster_module.address}",
        "--crystallize-json=dask.json",
    )
    result.assert_outcomes(passed=1)
    assert _summaries(pytester.path / "dask.json") == _summaries(pytester.path / "serial.json")
