"""A client usable only on the event loop it was made on, as httpx, aiohttp or AsyncOpenAI clients are.

The tests that a run keeps one event loop for all its replicates use it as a
user's module-level client: made on first use (:func:`module_client`), it
fails once a later replicate runs on another loop. Shared by
``tests/core/test_eventloops.py`` (serial, async and process backends) and
``tests/plugins/test_dask_backend.py``. A Dask worker cannot import this
module: it is shipped with the test module that imports it, so each worker
process holds a client of its own, as it would hold the user's.
"""

from __future__ import annotations

import asyncio

#: The module-level client once made (one at most); tests clear it before a run made in this process.
CLIENT: list[LoopBoundClient] = []


class LoopBoundClient:
    """Remembers the running loop it was made on; ``call`` refuses any other."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def call(self, value: float) -> float:
        if asyncio.get_running_loop() is not self.loop:
            msg = "this client's event loop is closed"
            raise RuntimeError(msg)
        await asyncio.sleep(0)
        return value


def module_client() -> LoopBoundClient:
    """The module-level client, made on first use (on the loop running then), as a user's is."""
    if not CLIENT:
        CLIENT.append(LoopBoundClient())
    return CLIENT[0]
