"""Figures and the HTML page: what is drawn is the data of the summary and the evidence, and the page is offline.

The figures are read back from matplotlib's artists (the points, lines and
image a reader sees) and compared with the raw values computed with numpy.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from pytest_crystallize import Treatment, grid, hypothesis, run_experiment
from pytest_crystallize.core.report import plots
from pytest_crystallize.core.report.evidence import evidence_of
from pytest_crystallize.core.report.gate_plots import gate_figure
from pytest_crystallize.core.report.html import ExperimentView, RunView, report_document
from pytest_crystallize.core.report.sweep_plots import swept_settings
from pytest_crystallize.core.report.text import summarize


def _measured(ctx):
    own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))
    ctx.metrics.add("loss", float(ctx.rng.normal(2.0 - ctx.get("gain", 0.0), 0.4) + own.normal(0, 0.2)))


@pytest.fixture(scope="module")
def result():
    return run_experiment(
        _measured, name="loss <b>study</b>", replicates=16, seed=3, params={"gain": 0.0, "stream": 0},
        treatments=[Treatment("better", {"gain": 0.5, "stream": 1}), Treatment("same", {"gain": 0.0, "stream": 2})],
        hypotheses=[hypothesis("loss", "no_worse", margin=0.3, better="lower", test="paired_t")],
    )


@pytest.fixture(scope="module")
def swept():
    return run_experiment(
        _measured, name="sweep", replicates=8, seed=4, params={"gain": 0.0, "stream": 0},
        treatments=grid(gain=[0.1, 0.3, 0.6], stream=[1, 2]), hypotheses=[hypothesis("loss", "minimize")],
    )


def _per_replicate(result, metric, condition):
    replicates, values = result.select(metric, condition)
    return np.array([values[replicates == r].mean() for r in np.unique(replicates)])


def test_the_values_figure_draws_every_replicate_value_and_the_row_interval(result):
    summary, evidence = summarize(result), evidence_of(result)
    fig = result.plot("loss")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 3
    for condition, collection in zip(result.conditions, dots, strict=True):
        assert sorted(collection.get_offsets()[:, 0]) == pytest.approx(sorted(_per_replicate(result, "loss", condition)))
    row = next(r for r in summary["rows"] if r["condition"] == "better")
    intervals = [line.get_xdata() for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert any(list(x) == pytest.approx([row["ci_low"], row["ci_high"]]) for x in intervals)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["baseline", "better", "same"]
    assert evidence["values"]["loss"]["better"]["replicates"] == list(range(16))


def test_the_forest_figure_shows_each_interval_and_the_margin_a_no_worse_verdict_tolerates(result):
    fig = result.plot("loss", kind="difference")
    ax = fig.axes[0]
    verdict = next(v for v in result.verdicts if v.treatment == "better")
    intervals = [list(line.get_xdata()) for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert [verdict.details["ci_low"], verdict.details["ci_high"]] in [pytest.approx(x) for x in intervals]
    # Lower is better: the tolerated worsening is the band from 0 up to +margin, on each row.
    bands = [c for c in ax.collections if not isinstance(c, PathCollection)]
    assert len(bands) == 2
    for band in bands:
        xs = band.get_paths()[0].vertices[:, 0]
        assert (xs.min(), xs.max()) == pytest.approx((0.0, 0.3))
    texts = [t.get_text() for axes in fig.axes for t in axes.get_yticklabels()]
    assert any(f"p {verdict.p_value:.3g}" in t and ("PASS" if verdict.holds else "FAIL") in t for t in texts)


def test_the_paired_figure_is_a_histogram_of_each_treatment_minus_baseline(result):
    fig = result.plot("loss", kind="paired")
    ax = fig.axes[0]
    bars = ax.patches
    per_row = len(bars) // 2
    edges = [b.get_x() for b in bars[:per_row]] + [bars[per_row - 1].get_x() + bars[per_row - 1].get_width()]
    edges[0], edges[-1] = edges[0] - 1e-9, edges[-1] + 1e-9  # read back from the bars: rounding at the ends
    base = _per_replicate(result, "loss", "baseline")
    for row, treatment in enumerate(("better", "same")):
        counts, _ = np.histogram(_per_replicate(result, "loss", treatment) - base, bins=edges)
        heights = np.array([b.get_height() for b in bars[row * per_row:(row + 1) * per_row]])
        assert heights / heights.max() == pytest.approx(counts / counts.max())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["better", "same"]
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["n 16", "n 16"]


def test_a_grid_is_a_sweep_and_two_arbitrary_treatments_are_not(result, swept):
    assert swept_settings(evidence_of(result)["settings"]) == {}
    settings = swept_settings(evidence_of(swept)["settings"])
    assert set(settings) == {"gain", "stream"}
    assert settings["gain"]["gain=0.3,stream=2"] == 0.3


def test_the_sweep_heatmap_holds_each_grid_point_mean(swept):
    fig = swept.plot("loss", kind="sweep")
    image = next(c for ax in fig.axes for c in ax.get_children() if isinstance(c, AxesImage))
    cells = image.get_array()
    assert cells.shape == (3, 2)
    for i, gain in enumerate((0.1, 0.3, 0.6)):
        for j, stream in enumerate((1, 2)):
            name = f"gain={gain},stream={stream}"
            assert cells[i, j] == pytest.approx(_per_replicate(swept, "loss", name).mean())


def test_the_gate_figure_has_a_panel_per_metric_and_a_row_per_condition():
    rows = [
        {"condition": c, "metric": m, "better": "higher", "status": s, "mean_saved": 1.0, "mean_current": 1.1,
         "difference": d, "ci_low": d - 0.1, "ci_high": d + 0.1, "margin": 0.05}
        for c, m, s, d in [("baseline", "acc", "no change", 0.0), ("t", "acc", "regressed", -0.3),
                           ("baseline", "f1", "improved", 0.2)]
    ]
    fig = gate_figure({"saved_run": "abc", "rows": rows})
    panels, right = fig.axes[:2], fig.axes[2:]  # a panel per metric, then each one's labels on the right
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["baseline", "t"]
    assert [t.get_text() for t in panels[1].get_yticklabels()] == ["baseline"]
    assert [t.get_text() for t in right[0].get_yticklabels()] == ["1 \u2192 1.1  no change", "1 \u2192 1.1  regressed"]


def test_svg_ids_are_unique_in_a_page(result):
    first = plots.svg_markup(result.plot("loss"), "a")
    second = plots.svg_markup(result.plot("loss", kind="difference"), "b")
    ids = re.findall(r'id="([^"]+)"', first + second)
    assert ids
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'href="#([^"]+)"', first + second):
        assert ref in ids


def test_the_document_is_offline_escaped_and_holds_every_figure(result, swept):
    views = [ExperimentView("t.py::" + r.experiment, summarize(r), evidence_of(r)) for r in (result, swept)]
    page = report_document(RunView("pytest-crystallize report", "today", versions={"numpy": "2"}), views)
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page
    assert "<script" not in page.lower()
    assert "@import" not in page
    assert "url(http" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "loss &lt;b&gt;study&lt;/b&gt;" in page
    assert "<b>study</b>" not in page
    plotted = re.findall(r'data-plot="([^"]+)"', page)
    assert plotted.count("values:loss") == 2
    assert "forest:loss" in plotted
    assert "paired:loss" in plotted
    assert "sweep:loss" in plotted
    assert page.count("<svg") == len(plotted)


def test_repr_html_shows_table_verdicts_and_figures(result, monkeypatch):
    page = result._repr_html_()
    assert "<table" in page
    assert "no_worse" in page
    assert "<svg" in page
    assert page.startswith('<div class="crystallize"><style>')
    monkeypatch.setattr(plots, "has_matplotlib", lambda: False)
    bare = result._repr_html_()
    assert "<svg" not in bare
    assert "<table" in bare
    assert "pytest-crystallize[report]" in bare


def _shifted(ctx):
    own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))  # each condition's own noise: differences vary
    ctx.metrics.add("x", float(ctx.rng.normal(ctx.get("shift", 0.0), 1.0) + own.normal()))


def _mixture_p(d: np.ndarray, scale: float = 0.5) -> float:
    """Two-sided t-mixture always-valid p after len(d) differences, worked from the formula (not the package).

    BF_k = (1 + k g)^(-1/2) ((1 + t^2/(k-1)) / (1 + t^2/((k-1)(1 + k g))))^(k/2), g = scale^2, BF_1 = 1;
    p = min(1, 1 / max_k BF_k).
    """
    best = 1.0
    for k in range(2, len(d) + 1):
        head = d[:k]
        t2 = k * head.mean() ** 2 / head.var(ddof=1)
        g = scale * scale
        bf = (1 + k * g) ** -0.5 * ((1 + t2 / (k - 1)) / (1 + t2 / ((k - 1) * (1 + k * g)))) ** (k / 2)
        best = max(best, bf)
    return min(1.0, 1.0 / best)


def test_an_anytime_design_draws_each_verdict_s_always_valid_p_value_against_alpha() -> None:
    from pytest_crystallize.core.report.anytime_plots import anytime_figure

    result = run_experiment(
        _shifted, name="anytime", replicates="anytime", max_replicates=60, seed=5,
        treatments=[Treatment("up", {"shift": 0.8, "stream": 1}), Treatment("flat", {"shift": 0.0, "stream": 2})],
        hypotheses=[hypothesis("x", "two-sided", test="t_mixture")],
    )
    evidence = evidence_of(result)
    paths = {path["treatment"]: path for path in evidence["anytime"]}
    assert set(paths) == {"up", "flat"}
    for verdict in result.verdicts:
        path = paths[verdict.treatment]
        replicates, base = result.select("x", "baseline")
        _, treated = result.select("x", verdict.treatment)
        d = (treated - base)[np.argsort(replicates)]
        assert path["replicates"][-1] == verdict.details["anytime"]["replicates"]
        assert path["p_values"][-1] == pytest.approx(verdict.p_value)
        for n, p in zip(path["replicates"], path["p_values"], strict=True):
            assert p == pytest.approx(_mixture_p(d[:n]), rel=1e-9), (verdict.treatment, n)
    fig = anytime_figure(evidence)
    ax = fig.axes[0]
    alpha = result.verdicts[0].details["anytime"]["alpha"]
    assert any(list(line.get_ydata()) == [alpha, alpha] for line in ax.get_lines())  # the alpha line
    drawn = [line for line in ax.get_lines() if len(line.get_xdata()) > 1 and line.get_ydata()[0] != alpha]
    assert sorted(len(line.get_xdata()) for line in drawn) == sorted(len(p["replicates"]) for p in paths.values())
    assert ax.get_yscale() == "log"
    assert anytime_figure(evidence_of(run_experiment(
        _shifted, name="fixed", replicates=6, seed=5, treatments=[Treatment("up", {"shift": 0.8})],
        hypotheses=[hypothesis("x", "maximize")],
    ))) is None
    page = report_document(RunView("run", "today"), [ExperimentView("anytime", summarize(result), evidence)])
    assert 'data-plot="anytime"' in page
