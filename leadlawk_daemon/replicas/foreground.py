"""``leadlawk replica NAME``: serve one replica in the foreground until SIGTERM or Ctrl-C.

Every replica's command is the same shape: start it, print where it listens (the lines a user
pastes into a config), and wait. SIGTERM unwinds like Ctrl-C, so a bench or a supervisor that
ends a replica still runs its cleanup (the sites replica removes its per-run CA).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

T = TypeVar("T")


async def serve_in_foreground(serving: AbstractAsyncContextManager[T], announce: Callable[[T], Iterable[str]]) -> None:
    """Enter ``serving``, print each line ``announce`` gives for what it yields, then wait for SIGTERM
    (or cancellation, which Ctrl-C brings through ``asyncio.run``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Windows' loops have no signal handlers; Ctrl-C still cancels there.
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with serving as served:
            for line in announce(served):
                print(line, flush=True)
            await stop.wait()
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)
