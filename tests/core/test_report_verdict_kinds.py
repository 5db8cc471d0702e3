"""Every kind of verdict, drawn and written as what it is: futility boundaries, best conditions, designs.

The figures are read back from matplotlib's artists and compared with
numbers computed independently (published tables, numpy).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report import plots


def _null(ctx):
    own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))
    ctx.metrics.add("score", float(ctx.rng.normal(0.0, 1.0) + own.normal(0.0, 1.0)))


def test_the_sequential_figure_draws_the_futility_boundary_of_every_look():
    # gsDesign(k=3, test.type=4): one-sided alpha 0.025, 90% power, Hwang-Shih-DeCani spending (gamma -4 for
    # efficacy, -2 for futility), non-binding; its published futility z-bounds are -0.2387, 0.9411, 1.9992.
    result = run_experiment(
        _null, replicates="auto", max_replicates=60, looks=3, futility=True, spending="hsd", power=0.9,
        alpha=0.025, seed=5, params={"stream": 0}, treatments=[Treatment("same", {"stream": 1})],
        hypotheses=[hypothesis("score", "maximize", test="welch_t")],
    )
    fig = plots.sequential_figure([v.to_dict() for v in result.verdicts])
    ax = fig.axes[0]
    futility = [line for line in ax.get_lines() if "futility" in str(line.get_label())]
    assert len(futility) == 1
    assert list(futility[0].get_xdata()) == [20, 40, 60]
    published = stats.norm.sf([-0.2387, 0.9411, 1.9992])
    assert list(futility[0].get_ydata()) == pytest.approx(published, abs=1e-4)
    assert "futility" in fig.texts[0].get_text()


def test_without_futility_the_sequential_figure_has_no_futility_boundary():
    result = run_experiment(
        _null, replicates="auto", max_replicates=40, looks=2, seed=5, params={"stream": 0},
        treatments=[Treatment("same", {"stream": 1})], hypotheses=[hypothesis("score", "maximize")],
    )
    fig = plots.sequential_figure([v.to_dict() for v in result.verdicts])
    assert not [line for line in fig.axes[0].get_lines() if "futility" in str(line.get_label())]
