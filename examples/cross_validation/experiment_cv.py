"""Comparing classifiers by repeated 10-fold cross-validation, with a test that knows folds overlap.

scikit-learn's bundled Wisconsin breast-cancer data (569 tumours, 30
features; ``load_breast_cancer``, nothing downloaded). The classifiers:

* baseline: logistic regression on the raw features, which differ in scale
  by four orders of magnitude, so the solver stops before it converges;
* ``scaled``: the same model behind a ``StandardScaler``;
* ``centroid``: a nearest-centroid classifier on scaled features.

Design
------
``design=cv(k=10, repeats=3)`` makes the experiment's 30 replicates the folds
of 3 x 10-fold cross-validation. ``ctx.folds(n)`` hands each replicate its
``(train_indices, test_indices)``; the shuffles are seeded from the
experiment's seed alone, so every condition is fitted and scored on the very
same folds (a paired comparison).

Folds are not independent replicates: any two training sets share 8/9 of
their rows. The verdicts therefore use Bouckaert and Frank's corrected
repeated k-fold t, whose variance is ``(1/30 + 1/9) var(d)`` instead of the
paired t's ``var(d) / 30``. The naive test would be about twice as
confident as the data allow.

Experiments
-----------
* ``experiment_scaling_helps``: ``accuracy`` is higher when ``scaled``.
* ``experiment_best_classifier``: which of the three is best
  (``direction="best"``)? Multiple comparisons with the best name the winner
  with 95% simultaneous confidence, or every classifier that cannot be told
  from it, here within a margin of one percentage point.

Run it (a few seconds)::

    cd examples/cross_validation && pytest --crystallize experiment_cv.py

Needs scikit-learn: ``pip install -e ".[examples]"``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from pytest_crystallize import Treatment, cv, data_source, hypothesis, pipeline_step

BLAS = ThreadpoolController()


@functools.cache
def dataset() -> tuple[np.ndarray, np.ndarray]:
    """The features and labels, loaded once per process."""
    X, y = load_breast_cancer(return_X_y=True)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


@data_source
def data(ctx):
    """The whole data set: the design, not the datasource, decides each replicate's fold."""
    return dataset()


def build(model: str):
    if model == "centroid":
        return make_pipeline(StandardScaler(), NearestCentroid())
    classifier = LogisticRegression(max_iter=100)
    return make_pipeline(StandardScaler(), classifier) if model == "scaled" else classifier


@pipeline_step()
def fit_and_score(data, ctx, model="raw"):
    """Fit on this replicate's training folds, record accuracy on its held-out fold."""
    X, y = data
    train, test = ctx.folds(len(y))
    estimator = build(model)
    with BLAS.limit(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the raw model's struggle is the point
        estimator.fit(X[train], y[train])
    ctx.metrics.add("accuracy", float(np.mean(estimator.predict(X[test]) == y[test])))


SCALED = Treatment("scaled", {"model": "scaled"})


@pytest.mark.experiment(design=cv(k=10, repeats=3), seed=7, treatments=[SCALED])
@hypothesis(metric="accuracy", direction="maximize")
def experiment_scaling_helps(data, ctx):
    fit_and_score(data, ctx)


@pytest.mark.experiment(
    design=cv(k=10, repeats=3), seed=7, treatments=[SCALED, Treatment("centroid", {"model": "centroid"})]
)
@hypothesis(metric="accuracy", direction="best", margin=0.01, name="best classifier")
def experiment_best_classifier(data, ctx):
    fit_and_score(data, ctx)
