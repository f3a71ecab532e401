"""FIFO lanes by key (a job), served in turn: the fairness both the fair mailbox and the fair gate use.

A lane exists only while it holds something, and then its key is in the serving order exactly once.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["Lanes"]

T = TypeVar("T")


class Lanes(Generic[T]):
    def __init__(self) -> None:
        self._lanes: dict[Hashable, collections.deque[T]] = {}
        self._turns: collections.deque[Hashable] = collections.deque()  # served next at the head

    def __bool__(self) -> bool:
        return bool(self._turns)

    def counts(self) -> dict[Hashable, int]:
        return {key: len(lane) for key, lane in self._lanes.items()}

    def push(self, key: Hashable, item: T) -> None:
        """Add ``item`` at the end of ``key``'s lane; a new lane is served after those waiting."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = collections.deque()
            self._turns.append(key)
        lane.append(item)

    def pop(self) -> T:
        """The head of the lane whose turn it is; that lane goes to the back of the order."""
        key = self._turns.popleft()
        lane = self._lanes[key]
        item = lane.popleft()
        if lane:
            self._turns.append(key)
        else:
            del self._lanes[key]
        return item

    def put_back(self, key: Hashable, item: T, index: Callable[[Sequence[T]], int]) -> None:
        """Insert ``item`` into ``key``'s lane at ``index(lane)``, and serve that lane next."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = collections.deque()
        elif key in self._turns:
            self._turns.remove(key)
        lane.insert(index(lane), item)
        self._turns.appendleft(key)

    def remove(self, key: Hashable, item: T) -> None:
        """Take ``item`` out of ``key``'s lane, if it is there."""
        lane = self._lanes.get(key)
        if lane is None or item not in lane:
            return
        lane.remove(item)
        if not lane:
            del self._lanes[key]
            self._turns.remove(key)
