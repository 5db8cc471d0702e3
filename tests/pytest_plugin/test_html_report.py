"""--crystallize-html: one offline HTML file after the session, serial or under xdist; rows in pytest-html.

Runs are subprocesses: matplotlib's extension modules, like numpy's, cannot
be imported twice in one process, which in-process runs would need.
"""

from __future__ import annotations

import html
import json
import re

import pytest

# Three designs, each with its own figures: paired treatments with a margin, a grid sweep, a sequential run.
EXPERIMENTS = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, grid, hypothesis

    def noise(ctx):
        return np.random.default_rng((ctx.seed, ctx.get("stream", 0))).normal(0, 0.3)

    @pytest.mark.experiment(replicates=10, seed=1, params={"gain": 0.0, "stream": 0},
                            treatments=[Treatment("tuned", {"gain": 0.8, "stream": 1})])
    @hypothesis(metric="score", direction="maximize", test="paired_t")
    @hypothesis(metric="score", direction="no_worse", margin=0.5, test="paired_t")
    def experiment_tuning(ctx):
        ctx.metrics.add("score", ctx.rng.normal(1 + ctx.get("gain"), 0.5) + noise(ctx))

    @pytest.mark.experiment(replicates=6, seed=2, params={"gain": 0.0, "stream": 0},
                            treatments=grid(gain=[0.5, 1.0], stream=[1, 2]))
    @hypothesis(metric="score", direction="maximize")
    def experiment_sweep(ctx):
        ctx.metrics.add("score", ctx.rng.normal(1 + ctx.get("gain"), 0.5) + noise(ctx))

    @pytest.mark.experiment(replicates="auto", max_replicates=30, looks=3, seed=3,
                            params={"gain": 0.0, "stream": 0}, treatments=[Treatment("up", {"gain": 0.3, "stream": 1})])
    @hypothesis(metric="score", direction="maximize", test="paired_t")
    def experiment_looks(ctx):
        ctx.metrics.add("score", ctx.rng.normal(1 + ctx.get("gain"), 0.5) + noise(ctx))
"""
NODES = [f"test_designs.py::experiment_{name}" for name in ("looks", "sweep", "tuning")]
PLAIN = "def test_plain():\n    assert True\n"
DUMP = """
    import json
    import sys

    def pytest_sessionfinish(session):
        (session.config.rootpath / "loaded.json").write_text(json.dumps(sorted(sys.modules)))
"""


def _plots(page: str) -> list[str]:
    return re.findall(r'data-plot="([^"]+)"', page)


def _check_report(page: str) -> None:
    for node in NODES:
        assert f">{node}</h2>" in page
    plotted = _plots(page)
    assert {"values:score", "forest:score", "paired:score", "sweep:score", "sequential"} <= set(plotted)
    assert plotted.count("values:score") == 3
    assert page.count("<svg") == len(plotted)
    assert "<script" not in page
    assert "7 hypotheses passed, 0 failed in 3 experiments" in page
    assert "Provenance of the run" in page


def _check_pytest_html(path) -> None:
    """pytest-html's row of each experiment holds its section (table and figures); a plain test's holds none."""
    rows = _pytest_html_rows(path)
    for node in NODES:
        (call,) = rows[node]
        (extra,) = [e for e in call["extras"] if e["format_type"] == "html"]
        assert f">{node}</h2>" in extra["content"]
        assert "<table" in extra["content"]
        assert "values:score" in _plots(extra["content"])
    assert rows["test_plain.py::test_plain"][0]["extras"] == []


def test_the_html_report_holds_every_experiment_with_its_figures_and_so_do_pytest_html_rows(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_designs=EXPERIMENTS, test_plain=PLAIN)
    result = pytester.runpytest_subprocess("--crystallize", "--crystallize-html=out/report.html", "-p", "no:xdist",
                                           "--html=ph.html", "--self-contained-html")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["crystallize: wrote the HTML report to *out*report.html"])
    page = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    _check_report(page)
    command = re.search(r"<dt>command</dt><dd>([^<]*)</dd>", page)
    assert command is not None
    assert "--crystallize --crystallize-html=out/report.html" in html.unescape(command.group(1))
    _check_pytest_html(pytester.path / "ph.html")


def test_under_xdist_the_controller_writes_the_same_figures_from_the_workers_reports(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_designs=EXPERIMENTS, test_plain=PLAIN)
    pytester.makeini("[pytest]\ncrystallize_html = report.html\n")
    result = pytester.runpytest_subprocess("--crystallize", "-n", "2", "--html=ph.html", "--self-contained-html")
    result.assert_outcomes(passed=4)
    _check_report((pytester.path / "report.html").read_text(encoding="utf-8"))
    _check_pytest_html(pytester.path / "ph.html")


def test_the_html_report_names_a_failed_experiment_and_the_gate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_designs=EXPERIMENTS.replace('direction="no_worse", margin=0.5', 'direction="equivalent", margin=0.01'))
    pytester.runpytest_subprocess("--crystallize", "-p", "no:xdist", "--crystallize-save=main",
                                  "-k", "tuning").assert_outcomes(failed=1)
    result = pytester.runpytest_subprocess("--crystallize", "-p", "no:xdist", "--crystallize-gate",
                                           "--crystallize-html=r.html", "-k", "tuning")
    result.assert_outcomes(failed=1)
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert '<span class="badge fail">FAILED; gate passed</span>' in page
    assert "FAIL &#x27;score equivalent&#x27; tuned vs baseline" in page
    assert "Compared with saved run" in page
    assert "gate" in _plots(page)


def test_without_the_option_no_figure_library_is_loaded(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(DUMP)
    pytester.makepyfile(test_designs=EXPERIMENTS)
    pytester.runpytest_subprocess("--crystallize", "-p", "no:xdist", "-k", "tuning").assert_outcomes(passed=1)
    loaded = json.loads((pytester.path / "loaded.json").read_text())
    assert [m for m in loaded if m.split(".")[0] == "matplotlib" or m.endswith("html_report")] == []


def test_without_matplotlib_the_option_says_how_to_install_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\nsys.modules['matplotlib'] = None  # as if it were not installed\n")
    pytester.makepyfile(test_designs=EXPERIMENTS)
    result = pytester.runpytest_subprocess("--crystallize", "--crystallize-html=r.html", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--crystallize-html needs matplotlib*pip install 'pytest-crystallize?report?'*"])


def _pytest_html_rows(path) -> dict[str, list[dict]]:
    """The test rows pytest-html 4 keeps as JSON in its page's data-jsonblob attribute."""
    blob = re.search(r'data-jsonblob="([^"]*)"', path.read_text(encoding="utf-8"))
    assert blob is not None, "no pytest-html data in the page"
    return json.loads(html.unescape(blob.group(1)))["tests"]
