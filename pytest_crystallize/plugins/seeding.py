"""``SeedPlugin``: seed the global random generators before every replicate.

``ctx.rng`` and ``ctx.seed`` are already reproducible without any plugin.
``SeedPlugin`` is for code that draws from *global* generators
(``random.random()``, ``np.random.rand()``, ``torch.randn``): it seeds them
per replicate, so such code is reproducible too.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.errors import ConfigurationError
from pytest_crystallize.hookspecs import hookimpl

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.experiment import Experiment

__all__ = ["SeedPlugin", "default_seed_function"]

_UINT32: Final = 2**32
_torch_module: Any = None
_torch_checked = False


def _torch() -> Any:
    """The torch module when it is importable (looked up once per process), else None."""
    global _torch_module, _torch_checked  # a per-process cache of one lookup
    if not _torch_checked:
        _torch_checked = True
        if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
            import torch  # type: ignore[import-not-found]  # optional

            _torch_module = torch
    return _torch_module


def default_seed_function(seed: int) -> None:
    """Seed ``random``, numpy's global generator and, when importable, torch with ``seed``.

    numpy's legacy generator takes 32 bits, so it gets ``seed % 2**32``.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % _UINT32)  # seeding the global generator is the point
    torch = _torch()
    if torch is not None:
        torch.manual_seed(seed)


class SeedPlugin:
    """Seed global random generators before each replicate of each condition.

    ``seed=None`` (the default, recommended) uses the replicate's own seed
    (``ctx.seed``, derived from the experiment's master seed set by
    ``@pytest.mark.experiment(seed=...)`` or ``--crystallize-seed``), so global
    draws and ``ctx.rng`` share one seed scheme. An integer ``seed`` derives
    the per-replicate seeds from it instead (with the same SeedSequence
    scheme); it affects only the global generators, never ``ctx.seed`` /
    ``ctx.rng`` nor the master seed recorded in the results.

    ``auto_seed=True`` gives every replicate its own seed, the same in every
    condition (common random numbers). ``auto_seed=False`` seeds every
    replicate with one seed: ``seed``, or the master seed when ``seed`` is None.

    ``seed_fn(seed)`` replaces :func:`default_seed_function` (which seeds
    ``random``, numpy's global generator and torch when it is importable).

    Global generators are shared between threads: with
    ``ParallelExecution(kind="thread")`` or ``AsyncExecution`` the order of
    draws between concurrent replicates is not fixed; draw from ``ctx.rng``.
    """

    def __init__(
        self,
        seed: int | None = None,
        auto_seed: bool = True,
        seed_fn: Callable[[int], None] | None = None,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            msg = f"SeedPlugin: seed must be an integer >= 0 or None, got {seed!r}"
            raise ConfigurationError(msg)
        if seed_fn is not None and not callable(seed_fn):
            msg = f"SeedPlugin: seed_fn must be a function taking the seed, got {seed_fn!r}"
            raise ConfigurationError(msg)
        self.seed = seed
        self.auto_seed = bool(auto_seed)
        self.seed_fn = seed_fn or default_seed_function
        self._seeds = ReplicateSeeds(seed) if seed is not None else None

    def __repr__(self) -> str:
        return f"SeedPlugin(seed={self.seed!r}, auto_seed={self.auto_seed!r})"

    def seed_for(self, ctx: FrozenContext) -> int:
        """The seed this plugin gives the replicate of ``ctx``."""
        if self._seeds is None:
            return ctx.seed if self.auto_seed else ctx.master_seed
        return self._seeds[ctx.replicate] if self.auto_seed else self._seeds.master

    @hookimpl(tryfirst=True)
    def crystallize_replicate_before(self, experiment: Experiment, ctx: FrozenContext) -> None:
        """Seed the global generators for this replicate, before other plugins run."""
        self.seed_fn(self.seed_for(ctx))
