"""The loop-stall warning: a callback that holds the event loop too long is named in the log.

``leadlawk_event_loop_lag_seconds`` says *that* the loop was late; this says *who* held it. The
loop bumps a heartbeat every ``interval`` (a timer callback, nothing more); a daemon thread looks
at it as often, and when the loop has not answered for ``threshold`` it reads the loop thread's
frame (``sys._current_frames``) and the loop's current task, and logs one warning for that stall
on ``leadlawk.loop``, with ``task``, ``coroutine`` and ``stack`` (innermost frames last, at most
``max_frames``). When the loop answers again, one info line says how long it was held.

Cheap enough to be always on, unlike asyncio's debug mode (whose ``slow_callback_duration`` hook
uvloop does not run anyway): 20 timer callbacks and 20 thread wake-ups a second. Its precision is
one ``interval``: a stall is measured from the last beat, not from the callback's start.

What it cannot see: C code that holds the GIL (a ``re`` match) keeps this thread from running
too; the warning then comes when the GIL is released, with the stack of whatever runs next on
the loop, often the caller of that C code. Pages are read in worker processes for that reason
(:mod:`leadlawk_daemon.resilience.worker_pool`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import selectors
import sys
import threading
import traceback
from types import FrameType, TracebackType

import uvloop

from leadlawk_daemon.clock import Clock, MonotonicClock

__all__ = ["LoopStallWatch"]

log = logging.getLogger("leadlawk.loop")


class LoopStallWatch:
    """``async with LoopStallWatch(0.25):`` watches the running loop until the block ends."""

    def __init__(
        self, threshold: float = 0.25, *, interval: float = 0.05, clock: Clock | None = None, max_frames: int = 20
    ) -> None:
        if threshold <= 0 or interval <= 0:
            raise ValueError("loop stall watch: threshold and interval must be positive")
        self.threshold = threshold
        self.interval = interval
        self.clock = clock or MonotonicClock()
        self.max_frames = max_frames
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._beat_at = 0.0
        self.beats = 0
        # The beat a warning was logged for: one warning per stall, and the next beat ends it.
        self._reported_beat: float | None = None
        self._next_beat: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    async def __aenter__(self) -> LoopStallWatch:
        self.attach()
        self._schedule()
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="loop-stall-watch", daemon=True)
        self._watcher.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._next_beat is not None:
            self._next_beat.cancel()
            self._next_beat = None
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            # Prompt: the thread waits on _stop, and a check takes microseconds.
            watcher.join(timeout=1.0)

    def attach(self) -> None:
        """Watch the running loop, from the thread that runs it (the context manager does this)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat_at = self.clock.monotonic()
        self._reported_beat = None

    def beat(self) -> None:
        """The loop answered: what its timer runs every ``interval``."""
        now = self.clock.monotonic()
        if self._reported_beat is not None and self._reported_beat == self._beat_at:
            log.info("event loop answered again", extra={"stalled_s": round(now - self._beat_at, 3)})
        self._beat_at = now
        self.beats += 1

    def check(self) -> bool:
        """What the watcher thread runs: True when it logged a stall (once per stall)."""
        beat_at = self._beat_at
        stalled = self.clock.monotonic() - beat_at
        if stalled <= self.threshold or self._reported_beat == beat_at or self._loop is None:
            return False
        frame = sys._current_frames().get(self._loop_thread)
        task = asyncio.current_task(self._loop)
        if task is None and (frame is None or _is_loop_machinery(frame)):
            # No callback of ours runs: the loop waits in its poll, and its timer is late because
            # the machine did not run this process. The lag histogram shows that; no one to name.
            return False
        self._reported_beat = beat_at
        stack = traceback.format_stack(frame, limit=self.max_frames) if frame is not None else []
        log.warning(
            "event loop held by one callback",
            extra={
                "task": task.get_name() if task is not None else None,
                "coroutine": getattr(task.get_coro(), "__qualname__", None) if task is not None else None,
                "stalled_s": round(stalled, 3),
                "stack": "".join(stack).rstrip(),
            },
        )
        return True

    def _schedule(self) -> None:
        assert self._loop is not None
        self._next_beat = self._loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.beat()
        self._schedule()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a watch that fails must not take the daemon with it, nor go quiet
                log.exception("loop stall watch: check failed")


# Where the loop thread's innermost Python frame is while it runs no callback: asyncio's runner
# (uvloop's loop is C below it), uvloop's own, or the selector asyncio's own loop polls in.
_MACHINERY = (*(os.path.dirname(m.__file__ or "") + os.sep for m in (asyncio, uvloop)), selectors.__file__)


def _is_loop_machinery(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_MACHINERY)
