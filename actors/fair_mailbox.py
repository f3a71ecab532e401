"""A mailbox with one FIFO lane per key (a job), served round-robin: one big job cannot starve a small one.

The enricher and the site actor take leads from every running job. With one FIFO, a 10,000-lead
area job queued first holds the whole mailbox and a 20-lead job submitted after it waits behind
all of it. Here each job has its own lane; the actor takes one message from each lane in turn.

Room is shared, with a fair share per lane: a lane may hold (waiting plus in hand) at most
``capacity // (other lanes + 2)`` messages, unless ``lane_capacity`` fixes it. Alone, a job fills
half the mailbox, so a newcomer always finds room; with others, each gets an equal part. Messages a
lane already holds above its share stay; it just takes no more until it is under again. A sender
waits only for its own lane's room, and every freed slot wakes every waiting sender to look again
(senders are few: one per job driver), so a big job's sender waiting for room never holds up a small
job's sender that has room.

Crash semantics are the plain mailbox's, lane by lane: a message put back (:meth:`redeliver`) goes
to its original place in its lane (by the order it was accepted in), and its lane is served next.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from actors.lanes import Lanes
from actors.mailbox import Envelope, Mailbox
from leadlawk_daemon.clock import Clock

__all__ = ["FairMailbox"]

M = TypeVar("M")


class FairMailbox(Mailbox[M]):
    def __init__(
        self,
        owner: str,
        capacity: int,
        lane_of: Callable[[M], Hashable],
        put_timeout: float = 300.0,
        clock: Clock | None = None,
        *,
        lane_capacity: int | None = None,
    ) -> None:
        super().__init__(owner, capacity, put_timeout, clock)
        if lane_capacity is not None and lane_capacity < 1:
            raise ValueError(f"mailbox of {owner}: lane_capacity must be at least 1, got {lane_capacity}")
        self._lane_of = lane_of
        self._lane_capacity = lane_capacity
        self._lanes: Lanes[Envelope[M]] = Lanes()  # the messages waiting, by lane
        self._held: collections.Counter[Hashable] = collections.Counter()  # per lane: waiting + in hand
        self._waiting = 0
        self._seq = 0
        self._order: dict[int, int] = {}  # id(envelope) -> when it was accepted, for redelivery

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def lanes(self) -> dict[Hashable, int]:
        """Messages each lane holds (waiting plus in hand)."""
        return dict(self._held)

    def lane_share(self, key: Hashable) -> int:
        """How many messages lane ``key`` may hold now."""
        if self._lane_capacity is not None:
            return self._lane_capacity
        others = sum(1 for lane in self._held if lane != key)
        return max(1, self.capacity // (others + 2))

    def has_room(self, key: Hashable = None) -> bool:
        return not self.full() and self._held[key] < self.lane_share(key)

    def _room_for(self, message: M) -> bool:
        return self.has_room(self._lane_of(message))

    def _enqueue(self, envelope: Envelope[M]) -> None:
        key = self._lane_of(envelope.message)
        self._seq += 1
        self._order[id(envelope)] = self._seq
        self._held[key] += 1
        self._lanes.push(key, envelope)
        self._waiting += 1

    def _requeue(self, envelope: Envelope[M]) -> None:
        mine = self._order[id(envelope)]

        def own_place(lane: Sequence[Envelope[M]]) -> int:
            # Messages put back together (a crash with several in hand) keep the order they were
            # accepted in. They are the lane's oldest, so the scan stays short.
            return next((at for at, e in enumerate(lane) if self._order[id(e)] >= mine), len(lane))

        self._lanes.put_back(self._lane_of(envelope.message), envelope, own_place)  # delivered next
        self._waiting += 1

    def _dequeue(self) -> Envelope[M]:
        self._waiting -= 1
        return self._lanes.pop()

    def _settled(self, envelope: Envelope[M]) -> None:
        key = self._lane_of(envelope.message)
        self._order.pop(id(envelope), None)
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]

    def _freed(self) -> None:
        # Every waiting sender looks again: the first in line may be a lane still over its share,
        # while the one behind it has room.
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
