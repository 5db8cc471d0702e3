"""Per-replicate seeds derived from one master seed.

Replicate ``r`` of *every* condition gets the same seed (common random
numbers), so baseline and treatment draw the same random stream and can be
compared pairwise. Seeds come from :class:`numpy.random.SeedSequence` with the
replicate index as spawn key, which makes them statistically independent of
one another and identical in every process, on every machine.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ReplicateSeeds", "replicate_seed"]



def replicate_seed(master: int, replicate: int) -> int:
    """Return the 32-bit seed of ``replicate`` under ``master``.

    It is the first word of ``SeedSequence(master, spawn_key=(replicate,))``,
    the same child ``SeedSequence(master).spawn(n)[replicate]`` would give.
    32 bits because ``random.seed``, ``numpy.random.seed`` and
    ``torch.manual_seed`` all accept it.
    """
    sequence = np.random.SeedSequence(master, spawn_key=(replicate,))
    return int(sequence.generate_state(1, np.uint32)[0])


class ReplicateSeeds:
    """Lazily computed, cached seeds of one run.

    Deriving a seed costs a few microseconds, so seeds are computed only for
    replicates whose context asks for one, and then shared by every condition.
    Mutable cache owned by one runner for the length of one run.
    """

    __slots__ = ("_cache", "master")

    def __init__(self, master: int) -> None:
        self.master = master
        self._cache: dict[int, int] = {}

    def __getitem__(self, replicate: int) -> int:
        seed = self._cache.get(replicate)
        if seed is None:
            seed = self._cache[replicate] = replicate_seed(self.master, replicate)
        return seed
