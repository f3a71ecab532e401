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
import time
import traceback
from types import FrameType, TracebackType

import uvloop

from actors.clock import Clock, MonotonicClock

__all__ = ["LoopStallWatch"]

log = logging.getLogger("leadlawk.loop")


class LoopStallWatch:
    """``async with LoopStallWatch(0.25):`` watches the running loop until the block ends."""

    def __init__(
        self,
        threshold: float = 0.25,
        *,
        interval: float = 0.05,
        clock: Clock | None = None,
        max_frames: int = 20,
        starvation_check: bool = True,
    ) -> None:
        if threshold <= 0 or interval <= 0:
            raise ValueError("loop stall watch: threshold and interval must be positive")
        self.threshold = threshold
        self.interval = interval
        self.clock = clock or MonotonicClock()
        self.max_frames = max_frames
        # Off only where time is not the thread's (a FakeClock): then no CPU could match it.
        self.starvation_check = starvation_check
        self._probe: _ThreadProbe | None = None
        self._beat_cpu = 0.0
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
        self._probe = _ThreadProbe.of_this_thread() if self.starvation_check else None
        self._beat_at = self.clock.monotonic()
        self._beat_cpu = time.thread_time()
        self._reported_beat = None

    def beat(self) -> None:
        """The loop answered: what its timer runs every ``interval``."""
        now = self.clock.monotonic()
        if self._reported_beat is not None and self._reported_beat == self._beat_at:
            log.info("event loop answered again", extra={"stalled_s": round(now - self._beat_at, 3)})
        self._beat_at = now
        self._beat_cpu = time.thread_time()
        self.beats += 1

    def check(self) -> bool:
        """What the watcher thread runs: True when it logged a stall (once per stall)."""
        beat_at = self._beat_at
        stalled = self.clock.monotonic() - beat_at
        if stalled <= self.threshold or self._reported_beat == beat_at or self._loop is None:
            return False
        if self._probe is not None and self._probe.starved(self._beat_cpu, stalled, self.threshold):
            # The loop thread waits for a CPU and has had little: the machine is late, not a
            # callback (the lag histogram shows it). Looked at again at the next check.
            return False
        frame = sys._current_frames().get(self._loop_thread)
        task = asyncio.current_task(self._loop)
        if task is None and (frame is None or _is_loop_machinery(frame)):
            # No callback of ours runs: the loop waits in its poll, its timer late for the same
            # reason. No one to name.
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


class _ThreadProbe:
    """The loop thread seen from the watch thread: the CPU it has used, and whether it is waiting
    for a CPU (runnable) rather than running our code or blocked in a call (sleeping)."""

    def __init__(self, cpu_clock: int, stat_path: str) -> None:
        self._cpu_clock = cpu_clock
        self._stat_path = stat_path

    @classmethod
    def of_this_thread(cls) -> _ThreadProbe | None:
        """A probe of the calling thread; None where the platform has no per-thread CPU clock."""
        try:
            cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
        except (AttributeError, OSError):
            return None
        return cls(cpu_clock, f"/proc/self/task/{threading.get_native_id()}/stat")

    def starved(self, since_cpu: float, stalled: float, threshold: float) -> bool:
        """True when the thread is runnable now (neither sleeping in a call nor running) and, of
        the ``stalled`` seconds since its CPU clock read ``since_cpu``, ran less than half and
        less than ``threshold``: the kernel has not been running it. A callback that spent the
        threshold in CPU of its own is never excused, however busy the machine."""
        try:
            used = time.clock_gettime(self._cpu_clock) - since_cpu
            with open(self._stat_path, "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            return False
        return state == b"R" and used < min(stalled / 2, threshold)
