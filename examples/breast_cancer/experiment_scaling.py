"""Does standardising the features improve a logistic regression on breast-cancer data?

The Wisconsin diagnostic breast-cancer data (569 tumours, 30 features, benign
or malignant) ships with scikit-learn, so nothing is downloaded. Its features
live on very different scales: "mean area" is in the hundreds or thousands,
"mean smoothness" around 0.1. A logistic regression fitted by L-BFGS with a
modest iteration budget (scikit-learn's default ``max_iter=100``) struggles on
such badly conditioned inputs and usually stops before it converges. Putting a
``StandardScaler`` in front (zero mean, unit variance per feature, fitted on
the training split only) should fix the conditioning.

Question: over many random train/test splits, is the held-out accuracy of the
standardised model higher than that of the raw one?

Design
------
* One replicate is one stratified 70/30 train/test split, drawn with the
  replicate's seed (``ctx.seed``). The seed is the same in both conditions, so
  baseline and treatment are fitted and scored on *identical* splits and the
  comparison is paired (``test="auto"`` picks the paired t-test).
* Baseline: ``LogisticRegression(max_iter=100)`` on raw features.
  Treatment ``scaled``: the same model behind a ``StandardScaler``.
* Metrics: ``accuracy`` on the test split (the hypothesis) and ``iterations``,
  the solver's iteration count, tagged with whether it converged. Only
  deterministic quantities are recorded (no wall-clock times), so a rerun with
  the same seed reproduces the table exactly.
* The raw model's ``ConvergenceWarning`` is expected and part of what is being
  measured; it is silenced inside ``fit`` only, because the project runs its
  tests with ``filterwarnings = error``.

Run it (a few seconds)::

    cd examples/breast_cancer && pytest --crystallize

or, from the repository root, ``pytest --crystallize examples/breast_cancer``.
Needs scikit-learn: ``pip install -e ".[examples]"``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from pytest_crystallize import Treatment, data_source, hypothesis, pipeline_step

TEST_SIZE = 0.3

# A 400 x 30 design matrix gains nothing from multithreaded BLAS, and on a busy
# machine the BLAS threads spin against other processes: fit single-threaded.
BLAS = ThreadpoolController()


@functools.cache
def dataset() -> tuple[np.ndarray, np.ndarray]:
    """The features and labels, loaded once per process (they never change)."""
    X, y = load_breast_cancer(return_X_y=True)
    X.setflags(write=False)  # shared by every replicate: make accidental edits fail loudly
    y.setflags(write=False)
    return X, y


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class Fitted:
    model: object
    split: Split
    iterations: int  # solver iterations used
    max_iter: int  # the budget: iterations == max_iter means it did not converge


@data_source
def split(ctx):
    """A stratified train/test split drawn with the replicate's seed (same in every condition)."""
    X, y = dataset()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, stratify=y, random_state=ctx.seed
    )
    return Split(X_train, X_test, y_train, y_test)


@pipeline_step()
def fit(data, ctx, standardize=False, max_iter=100):
    """Fit a logistic regression, behind a StandardScaler when ``standardize`` is set."""
    classifier = LogisticRegression(max_iter=max_iter)
    model = make_pipeline(StandardScaler(), classifier) if standardize else classifier
    with BLAS.limit(limits=1), warnings.catch_warnings():
        # Hitting max_iter on raw features is the effect under study, not a bug.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.X_train, data.y_train)
    return Fitted(model, data, iterations=int(classifier.n_iter_[0]), max_iter=max_iter)


@pipeline_step()
def evaluate(fitted, ctx):
    """Record the held-out accuracy, and the solver's iteration count as a diagnostic."""
    test = fitted.split
    accuracy = float(np.mean(fitted.model.predict(test.X_test) == test.y_test))
    ctx.metrics.add("accuracy", accuracy)
    converged = fitted.iterations < fitted.max_iter
    ctx.record("iterations", fitted.iterations, tags={"converged": converged})
    return accuracy


@pytest.mark.experiment(
    replicates=30,
    seed=2024,
    treatments=[Treatment("scaled", {"standardize": True})],
)
@hypothesis(metric="accuracy", direction="maximize")
def experiment_standardizing_improves_accuracy(split, ctx):
    evaluate(fit(split, ctx), ctx)
