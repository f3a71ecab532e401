"""Dead letters from actors, persisted to the ``dead_letters`` table.

Actors hand a dead letter over synchronously while they unwind (see ``actors.dead_letters``), so
this sink only queues it, in a bounded buffer that one owned task drains into the store,
retrying while the database is down. If the buffer overflows during a long outage, the oldest
letter is written to the log in full at error level: the log is the last place it can be kept.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from actors.clock import Clock, MonotonicClock
from actors.dead_letters import DeadLetter, describe
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.store import Store
from supervisors.backoff import Backoff
from supervisors.spec import Started

__all__ = ["DeadLetterWriter"]

log = logging.getLogger("leadlawk.dead_letters")

# A store that refuses a dead letter is asked again after 0.25 s, doubling to at most 5 s.
_STORE_RETRY = Backoff(0.25, 5.0)


class DeadLetterWriter:
    def __init__(self, metrics: Metrics, capacity: int = 10_000, clock: Clock | None = None) -> None:
        self.metrics = metrics
        self.clock: Clock = clock or MonotonicClock()
        self.store: Store | None = None
        self._buffer: collections.deque[DeadLetter] = collections.deque()
        self._capacity = capacity
        self._pending = asyncio.Event()
        self.written = 0

    def dead_letter(self, letter: DeadLetter) -> None:
        if len(self._buffer) >= self._capacity:
            lost = self._buffer.popleft()
            log.error(
                "dead-letter buffer full; oldest kept only in this log line",
                extra={"kind": lost.kind, "source": lost.source, "reason": lost.reason,
                       "attempts": lost.attempts, "payload": redact(str(describe(lost.payload)))},
            )
        self._buffer.append(letter)
        self.metrics.dead_letters.labels(kind=letter.kind).inc()
        self._pending.set()

    @property
    def depth(self) -> int:
        return len(self._buffer)

    async def run(self, started: Started) -> None:
        started()
        retries = _STORE_RETRY.sequence()
        try:
            while True:
                await self._pending.wait()
                store = self.store
                while self._buffer and store is not None:
                    letter = self._buffer[0]
                    try:
                        await store.add_dead_letter(
                            letter.kind,  # type: ignore[arg-type]
                            _payload(letter),
                            f"{letter.source}: {letter.reason}",
                            letter.attempts,
                        )
                    except Exception as exc:
                        log.warning("dead letter not stored yet; retrying", extra={"error": repr(exc)})
                        await retries.wait(self.clock)
                        continue
                    retries.reset()
                    self._buffer.popleft()
                    self.written += 1
                if not self._buffer:
                    self._pending.clear()
                else:
                    await self.clock.sleep(retries.current())
        finally:
            for letter in self._buffer:
                log.error(
                    "dead letter not stored at shutdown; kept only in this log line",
                    extra={"kind": letter.kind, "source": letter.source, "reason": letter.reason,
                           "attempts": letter.attempts, "payload": redact(str(describe(letter.payload)))},
                )


def _payload(letter: DeadLetter) -> str | dict[str, object]:
    payload = letter.payload
    if isinstance(payload, dict):
        return payload
    return payload if isinstance(payload, str) else str(payload)
