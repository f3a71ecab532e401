"""Restart intensity: OTP's "at most N restarts within T seconds", beyond which a supervisor gives up."""

from __future__ import annotations

from collections import deque

__all__ = ["RestartIntensity"]


class RestartIntensity:
    def __init__(self, max_restarts: int, period: float) -> None:
        self.max_restarts = max_restarts
        self.period = period
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Count a restart at ``now``; False when it is one too many for the window."""
        self._times.append(now)
        while self._times and now - self._times[0] >= self.period:
            self._times.popleft()
        return len(self._times) <= self.max_restarts

    @property
    def recent(self) -> int:
        return len(self._times)
