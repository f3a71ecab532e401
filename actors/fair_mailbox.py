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

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from actors.clock import Clock
from actors.lanes import Lanes
from actors.mailbox import Envelope, Mailbox

__all__ = ["FairMailbox"]

M = TypeVar("M")
# Shares kept worked out, for up to this many lanes (jobs) at once; more are worked out per send.
_SHARES_KEPT = 256


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
        self._take = self._lanes.pop
        # Per lane: waiting + in hand. A lane is a key here only while it holds something, so the
        # number of other lanes is the dict's size, not a scan of it.
        self._held: dict[Hashable, int] = {}
        self._seq = 0
        # A lane's share beside ``others`` lanes, by ``others``: worked out once, as every send asks.
        self._shares = [self._share_beside(others) for others in range(min(capacity, _SHARES_KEPT))]

    @property
    def lanes(self) -> dict[Hashable, int]:
        """Messages each lane holds (waiting plus in hand)."""
        return dict(self._held)

    def lane_share(self, key: Hashable) -> int:
        """How many messages lane ``key`` may hold now."""
        others = len(self._held) - (key in self._held)
        return self._shares[others] if others < len(self._shares) else self._share_beside(others)

    def _share_beside(self, others: int) -> int:
        return self._lane_capacity or max(1, self.capacity // (others + 2))

    def has_room(self, key: Hashable = None) -> bool:
        return not self.full() and self._held.get(key, 0) < self.lane_share(key)

    def offer(self, message: M) -> bool:
        if self._waiting + self._in_flight >= self.capacity:
            return False
        key = self._lane_of(message)  # once per message, kept on its envelope
        held = self._held
        count = held.get(key, 0)
        others = len(held) - (count > 0)
        shares = self._shares
        if count >= (shares[others] if others < len(shares) else self._share_beside(others)):
            return False
        self._seq += 1
        held[key] = count + 1
        self._lanes.push(key, Envelope(message, 0, None, 0.0, key, self._seq))
        self._waiting += 1
        if self._getters:
            self._wake(self._getters)
        return True

    def _requeue(self, envelope: Envelope[M]) -> None:
        mine = envelope.seq

        def own_place(lane: Sequence[Envelope[M]]) -> int:
            # Messages put back together (a crash with several in hand) keep the order they were
            # accepted in. They are the lane's oldest, so the scan stays short.
            return next((at for at, e in enumerate(lane) if e.seq >= mine), len(lane))

        self._lanes.put_back(envelope.lane, envelope, own_place)  # delivered next

    def done(self, envelope: Envelope[M]) -> None:
        """The message in ``envelope`` is finished: its slot, and its lane's, is free."""
        self._in_flight -= 1
        key = envelope.lane
        left = self._held[key] - 1
        if left > 0:
            self._held[key] = left
        else:
            del self._held[key]
        if self._putters:
            self._freed()

    def _freed(self) -> None:
        # Every waiting sender looks again: the first in line may be a lane still over its share,
        # while the one behind it has room.
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
