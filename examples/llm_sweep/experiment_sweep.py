"""Which model and temperature answer arithmetic questions best? A grid sweep.

A stand-in for an LLM evaluation that runs offline in a second: a simulated
model answers "what is a + b?" correctly with a probability that grows with
the model's size and falls with its sampling temperature. The baseline
(``baseline.toml``: the tiny model at temperature 1.0) is compared with every
point of a grid of two models x two temperatures.

Design
------
* Sweep: ``grid({"llm.model": [...], "llm.temperature": [...]})`` makes four
  treatments. The dotted keys change one field of the nested ``llm`` settings
  and keep the others (``max_tokens`` stays 64).
* Typed binding: the experiment's ``llm`` parameter is annotated
  ``Annotated[LLMConfig, Bind("llm")]``, so it receives an ``LLMConfig``
  dataclass built from the context. Every grid point's configuration is
  checked when pytest collects the file, before anything runs: a typo such as
  ``"llm.temprature"`` or a temperature of ``"hot"`` is an error naming the
  treatment and the field. (A Pydantic model works the same way.)
* Evaluator: the experiment returns its answer; ``score`` compares it with the
  question's ``expected`` answer, which the datasource provides, and records
  ``exact_match`` (0/1) and ``abs_error`` for the replicate.
* Common random numbers: the question and the model's "luck" come from
  ``ctx.rng``, seeded per replicate and the same in every condition, so all
  conditions answer the same questions with the same luck and only the
  settings differ. Paired tests compare them replicate by replicate.
* Hypotheses: every grid point gets more answers exactly right
  (``exact_match``, maximize) and errs by less (``abs_error``, minimize) than
  the baseline; the eight p-values are Holm-corrected together.

Run it::

    cd examples/llm_sweep && pytest --crystallize

or, from the repository root, ``pytest --crystallize examples/llm_sweep``;
``--crystallize-treatment 'llm.model=large*'`` runs the large model's points only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pytest

from pytest_crystallize import Bind, FrozenContext, data_source, grid, hypothesis, load_config, pipeline_step

BASELINE = load_config(Path(__file__).with_name("baseline.toml"))
#: Probability that a model at temperature 0 answers right.
SKILL = {"tiny": 0.5, "small": 0.75, "large": 0.95}


@dataclass(frozen=True)
class LLMConfig:
    """The settings of the simulated model, built from ``ctx["llm"]`` for every replicate."""

    model: Literal["tiny", "small", "large"]
    temperature: float
    max_tokens: int | None = None


@data_source
def question(ctx: FrozenContext) -> dict[str, int]:
    """One question per replicate: the same in every condition."""
    a, b = (int(x) for x in ctx.rng.integers(10, 100, size=2))
    return {"a": a, "b": b, "expected": a + b}


@pipeline_step()
def simulated_llm(prompt: dict[str, int], ctx: FrozenContext, llm: Annotated[LLMConfig, Bind("llm")]) -> int:
    """Answer ``a + b``: right with probability SKILL x (1 - 0.3 x temperature), else off by 1 to 9."""
    luck, slip = ctx.rng.random(), int(ctx.rng.integers(1, 10))  # drawn in every condition alike
    p_right = SKILL[llm.model] * (1 - 0.3 * llm.temperature)
    right = prompt["a"] + prompt["b"]
    return right if luck < p_right else right + slip


def score(answer: int, expected: int) -> dict[str, float]:
    """The evaluator: how the replicate's answer compares with the expected one."""
    return {"exact_match": float(answer == expected), "abs_error": float(abs(answer - expected))}


@pytest.mark.experiment(
    replicates=100,
    seed=11,
    params=BASELINE.params,
    treatments=grid({"llm.model": ["small", "large"], "llm.temperature": [0.0, 0.7]}),
    evaluators=[score],
)
@hypothesis(metric="exact_match", direction="maximize")
@hypothesis(metric="abs_error", direction="minimize")
def experiment_model_and_temperature(question: dict[str, int], llm: Annotated[LLMConfig, Bind("llm")]) -> int:
    """Ask the question; the step finds this replicate's context and settings by itself."""
    assert llm.max_tokens == 64  # kept from the baseline in every grid point
    return simulated_llm(question)
