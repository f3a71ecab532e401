"""The worker's side of :mod:`leadlawk_daemon.resilience.worker_pool`: one task at a time, each
within its CPU budget, until the parent closes our stdin or stops us.

Kept apart from the pool so a worker imports neither asyncio nor the pool's parent side: its
start is an interpreter and what it is told to preload.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import resource
import signal
import struct
import sys
from collections.abc import Sequence
from typing import IO, Final

__all__ = ["BUDGET_SIGNALS", "HEADER", "NICENESS", "PATH_VARIABLE", "READY", "serve"]

HEADER: Final = struct.Struct("!Q")  # each frame: its length, then a pickle
READY: Final = b"ready"
PATH_VARIABLE: Final = "LEADLAWK_WORKER_SYS_PATH"
# Killed by its own budget: the profiling timer, or RLIMIT_CPU's soft limit.
BUDGET_SIGNALS: Final = frozenset({signal.SIGPROF, signal.SIGXCPU})
# A worker yields the CPU to the process it serves: at nice +5 the kernel gives it a third of the
# weight of the event loop's thread, so a page burning its budget on a busy machine slows the
# loop less. Its budget is CPU time, so the verdict on a page does not change.
NICENESS: Final = 5


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _arm(budget: float) -> None:
    """The task's budget: SIGPROF at ``budget`` CPU seconds from now; SIGXCPU at the next whole
    second of the process's CPU (RLIMIT_CPU counts in seconds), should SIGPROF not end it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + budget)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or soft <= hard:
        # Only the soft limit: an unprivileged process cannot raise a hard limit it lowered.
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    signal.setitimer(signal.ITIMER_PROF, budget)


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0)


def serve(budget: float, preload: Sequence[str]) -> None:
    """The worker's loop: one task at a time until the parent closes our stdin."""
    # Default actions: the budget's signals kill; Ctrl-C in a terminal is the parent's to handle.
    for budget_signal in BUDGET_SIGNALS:
        signal.signal(budget_signal, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGXCPU's default action dumps core: a worker stopped by RLIMIT_CPU leaves no core file.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.nice(NICENESS)
    # The channel gets private descriptors; a stray print() from a task goes to stderr instead.
    inbox = os.fdopen(os.dup(0), "rb", buffering=0)
    outbox = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.path[:] = os.environ.get(PATH_VARIABLE, os.pathsep.join(sys.path)).split(os.pathsep)
    for module in preload:
        importlib.import_module(module)
    _write_frame(outbox, READY)
    while True:
        header = _read_exactly(inbox, HEADER.size)
        if header is None:
            return
        (size,) = HEADER.unpack(header)
        frame = _read_exactly(inbox, size)
        if frame is None:
            return
        try:
            # Unpickled before the budget is armed: the function's module, if not preloaded, is
            # imported here, and its import is not the input's cost.
            fn, args = pickle.loads(frame)
            _arm(budget)
            answer: tuple[str, object] = ("ok", fn(*args))
        except Exception as exc:  # the task's error is the caller's to see, raised there
            answer = ("error", exc)
        try:
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            payload = pickle.dumps(("error", RuntimeError(f"the task's answer cannot be sent: {exc!r}")))
        _disarm()
        _write_frame(outbox, payload)


if __name__ == "__main__":
    serve(float(sys.argv[1]), sys.argv[2:])
