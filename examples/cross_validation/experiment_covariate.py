"""Adjusting for a pre-treatment covariate: the same comparison, much less noise.

When two conditions cannot be scored on the same items (an online test
shows each variant to different users; here each condition draws its own
evaluation batch), the batches' difficulty differs, and that noise can
swamp the difference between the conditions. If the difficulty of a batch
can be measured *before* the treatment acts on it, the comparison can be
adjusted for it: CUPED, or regression adjustment as in Lin (2013).

Setting
-------
Wisconsin breast-cancer data (``load_breast_cancer``, bundled with
scikit-learn). Two logistic regressions are trained once on a fixed 60%
training split: the baseline on raw features, ``scaled`` behind a
``StandardScaler``. Each replicate of each condition draws its own batch
of 40 tumours from the other 40% (the draw is seeded by the replicate and
the condition, so the conditions' batches differ) and records

* ``accuracy``: the condition's model on its batch (the metric);
* ``baseline_model_accuracy``: the baseline's model on the same batch. The
  baseline model exists before any treatment, and every condition's batch
  is drawn the same way, so this number measures how hard the batch is
  without being touched by the treatment: a pre-treatment covariate, in
  the spirit of CUPED's pre-period metric. (In the baseline it equals the
  metric itself; that is fine.)

``hypothesis(..., covariate="reference_accuracy")`` regresses the paired
differences on the covariate difference (HC2 standard errors) and reports
how much of the variance the adjustment removed; the verdict line shows
it as ``(covariate 'baseline_model_accuracy': variance -NN%)``. Without
the adjustment the interval would be 1 / sqrt(1 - reduction) times as wide.

Run it (a few seconds)::

    cd examples/cross_validation && pytest --crystallize experiment_covariate.py
"""

from __future__ import annotations

import functools
import warnings
import zlib

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from pytest_crystallize import Treatment, hypothesis

BATCH = 40
BLAS = ThreadpoolController()


@functools.cache
def split() -> tuple[np.ndarray, ...]:
    """One fixed train/pool split: the models are trained once, the pool is what batches come from."""
    X, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.4, stratify=y, random_state=0))


@functools.cache
def model(name: str):
    """A classifier trained once on the training split: ``raw`` or ``scaled``."""
    X_train, _, y_train, _ = split()
    estimators = {
        "raw": LogisticRegression(max_iter=100),
        "scaled": make_pipeline(StandardScaler(), LogisticRegression(max_iter=100)),
    }
    estimator = estimators[name]
    with BLAS.limit(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the raw model's struggle is the point
        estimator.fit(X_train, y_train)
    return estimator


@pytest.mark.experiment(replicates=30, seed=13, treatments=[Treatment("scaled", {"model": "scaled"})])
@hypothesis(metric="accuracy", direction="maximize", covariate="baseline_model_accuracy")
def experiment_scaling_with_covariate(ctx):
    _, X_pool, _, y_pool = split()
    # Each condition's own batch: seeded by the replicate *and* the condition.
    rng = np.random.default_rng([ctx.seed, zlib.crc32(ctx.condition.encode())])
    batch = rng.choice(len(y_pool), size=BATCH, replace=False)
    X, y = X_pool[batch], y_pool[batch]
    ctx.metrics.add("baseline_model_accuracy", float(np.mean(model("raw").predict(X) == y)))
    ctx.metrics.add("accuracy", float(np.mean(model(ctx.get("model", "raw")).predict(X) == y)))
