"""Tasks for the worker-pool tests, run in worker processes: a module of its own, light to import
(a worker imports it to find the function), never a test module (that would import pytest there)."""

from __future__ import annotations

import os
import signal
import time

from leadlawk_daemon.sites.extract import PageFacts


def length(data: bytes | bytearray) -> int:
    return len(data)


def pid() -> int:
    return os.getpid()


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def burn_cpu() -> None:
    """A task slow for any reason: CPU spent in a loop that never ends."""
    while True:
        pass


def hold_without_cpu(seconds: float) -> None:
    """A task that holds its worker without spending CPU: only the wall limit stops it."""
    time.sleep(seconds)


def die_by(signum: int) -> None:
    """A worker's death for another reason than its budget (the kernel's OOM killer sends SIGKILL)."""
    os.kill(os.getpid(), signum)
    signal.pause()


def refuse(message: str) -> None:
    raise ValueError(message)


def burn_page_facts(
    body: bytes | bytearray, content_type: str | None, url: str, newest_year: int, headers: object = ()
) -> PageFacts:
    """Stands in for ``page_facts`` on a page that is slow to read, whatever makes it slow."""
    burn_cpu()
    return PageFacts()


def burn_cpu_deaf_to_the_timer() -> None:
    """A task that disarms the profiling timer's signal (as a profiler might): RLIMIT_CPU stops it."""
    signal.signal(signal.SIGPROF, signal.SIG_IGN)
    burn_cpu()
