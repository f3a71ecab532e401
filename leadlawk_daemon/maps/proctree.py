"""The processes of one Chromium instance, read from /proc: who they are, how much memory, how to end them.

Playwright starts Chromium through its Node driver, so the browser is our grandchild and its
crashpad handlers are re-parented away. What ties every process of *our* instance together is
its private ``--user-data-dir``, which Chromium hands to every child it starts; the descendants
of the browser's main process are added so nothing that lacks the flag is missed.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessInfo", "browser_processes", "kill_processes", "lower_priority", "pss_bytes", "snapshot"]

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: int
    state: str
    cmdline: str


def snapshot() -> dict[int, ProcessInfo]:
    """Every live (non-zombie) process we can read, by pid."""
    out: dict[int, ProcessInfo] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited while we looked
        # The command name in parentheses may itself contain spaces or parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if state in ("Z", "X"):
            continue
        out[int(entry.name)] = ProcessInfo(
            int(entry.name), ppid, state, raw.replace(b"\0", b" ").decode(errors="replace")
        )
    return out


def browser_processes(user_data_dir: str, procs: dict[int, ProcessInfo] | None = None) -> list[ProcessInfo]:
    """The live processes of the Chromium instance that owns ``user_data_dir``, main process first."""
    procs = snapshot() if procs is None else procs
    marker = f"--user-data-dir={user_data_dir}"
    members = {pid for pid, info in procs.items() if marker in info.cmdline}
    # Grow to descendants: a helper started without the flag still belongs to this browser.
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in members:
                members.add(child)
                stack.append(child)
    found = [procs[pid] for pid in members]
    found.sort(key=lambda info: ("--type=" in info.cmdline, info.pid))
    return found


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size summed over ``pids``: shared pages counted once across the tree."""
    total = 0
    for pid in pids:
        try:
            text = (_PROC / str(pid) / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def kill_processes(pids: list[int]) -> None:
    """SIGKILL each pid; ones already gone are fine."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def lower_priority(pids: list[int], niceness: int) -> None:
    """Make each of ``pids`` at least ``niceness`` nicer than this process. Children forked later
    (Chromium's renderers come from its zygote) inherit it. A process that already exited, or one
    we may not change, is left as it is: priority is a preference, never a reason to fail."""
    if niceness <= 0:
        return
    floor = os.getpriority(os.PRIO_PROCESS, 0) + niceness
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getpriority(os.PRIO_PROCESS, pid) < floor:
                os.setpriority(os.PRIO_PROCESS, pid, min(floor, 19))
