"""pytest-level hooks of pytest-crystallize, added with ``pytest_addhooks``.

Implement them in a ``conftest.py`` or a pytest plugin. Mark conftest
implementations ``@pytest.hookimpl(optionalhook=True)``: without it, a run
with ``-p no:crystallize`` (where these hooks do not exist) fails with
"unknown hook".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.treatments import Treatment

__all__ = ["pytest_crystallize_conditions", "pytest_crystallize_plugins"]


@pytest.hookspec
def pytest_crystallize_plugins(item: pytest.Item, experiment: Experiment) -> Sequence[object] | None:
    """Return lifecycle plugins for the experiment ``item`` is about to run.

    Called once per experiment item, through ``item.ihook``: a conftest.py's
    implementation applies to the experiments in its directory and below
    only. Return a list of plugins (objects or modules with ``crystallize_*``
    hook methods, such as ``SeedPlugin()``), or ``None`` for none. Every
    implementation's plugins are used; when two provide the same
    ``firstresult`` hook (an execution backend), an inner conftest's win
    over an outer one's, and the experiment's own ``plugins=[...]`` win over
    both. Example, in ``conftest.py``::

        import pytest
        from pytest_crystallize import ParallelExecution, SeedPlugin

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_plugins(item, experiment):
            plugins = [SeedPlugin()]
            if experiment.replicates >= 100:
                plugins.append(ParallelExecution(max_workers=4))
            return plugins
    """


@pytest.hookspec(firstresult=True)
def pytest_crystallize_conditions(
    item: pytest.Item, experiment: Experiment, treatments: Sequence[Treatment]
) -> Sequence[Treatment | str] | None:
    """Choose which of an experiment's treatments run, and in which order.

    Called once per experiment item, through ``item.ihook``, just before it
    runs, with its treatments (already narrowed by ``--crystallize-treatment``).
    Return some of them (the objects or their names) in the order to run,
    or ``None`` to keep them. The baseline always runs, and replicate seeds do
    not depend on which treatments run, so a chosen treatment gives the same
    numbers as in a full run. The first non-None result wins: an inner
    conftest's over an outer one's. Then lifecycle plugins implementing
    ``crystallize_conditions_choose`` may narrow the choice further. A name
    that is not a treatment, or choosing none for an experiment with
    hypotheses, fails the item. Example, in ``conftest.py``::

        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_conditions(item, experiment, treatments):
            if item.config.getoption("--quick", default=False):
                return treatments[:2]  # the first two grid points only
            return None
    """
