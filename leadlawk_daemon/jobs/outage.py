"""A store call that waits out a database outage: the lifecycle's and the driver's one retry loop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from actors.clock import Clock
from leadlawk_daemon.logs import redact
from leadlawk_daemon.store.base import StoreUnavailable
from supervisors.backoff import Backoff

__all__ = ["call_through_outage"]

log = logging.getLogger("leadlawk.jobs")
T = TypeVar("T")

# Store calls retried through an outage wait 0.1 s, doubling to at most 1 s between attempts.
_STORE_RETRY = Backoff(0.1, 1.0)


async def call_through_outage(
    clock: Clock, stopping: Callable[[], bool], fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T | None:
    """A store call retried through an outage; None when the coordinator stops first."""
    retries = _STORE_RETRY.sequence()
    while True:
        try:
            return await fn(*args, **kwargs)
        except StoreUnavailable as exc:
            if stopping():
                log.warning("store call abandoned at stop", extra={"error": redact(str(exc))})
                return None
            await retries.wait(clock)
