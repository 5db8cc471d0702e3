"""The built-in behaviour of the replaceable hooks, itself a plugin registered ``trylast``.

Every plugin manager the engine builds registers :data:`DEFAULTS` first
(:func:`~pytest_crystallize.core.lifecycle.make_plugin_manager`): replicates
run serially and steps run as called unless another plugin's
``crystallize_replicates_run`` or ``crystallize_step_call`` answers first.
A user's backend or step wrapper wins by pluggy's ordinary ordering, with no
fallback hard-coded in the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.pipeline import StepCall
    from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch

__all__ = ["DEFAULTS", "DEFAULTS_NAME", "BuiltinDefaults"]

#: The name :data:`DEFAULTS` is registered under in every plugin manager.
DEFAULTS_NAME: Final = "crystallize-defaults"


class BuiltinDefaults:
    """Serial replicates and plain step calls: what happens when no plugin takes over."""

    def __repr__(self) -> str:
        return "BuiltinDefaults()"

    @hookimpl(trylast=True)
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Run ``tasks`` in order in the calling thread."""
        return [run_batch(tasks)]

    @hookimpl(trylast=True)
    def crystallize_step_call(self, experiment: Experiment, call: StepCall) -> Any:
        """Return the output a wrapper supplied, or call the step."""
        return call.proceed()


#: The one instance every plugin manager registers (stateless, so shared).
DEFAULTS: Final = BuiltinDefaults()
