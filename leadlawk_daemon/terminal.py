"""What the CLI shows a person at a terminal, and only there: colours and live progress.

Whether a stream is a terminal decides it; a pipe, a file or a Procfile's log collector gets the
plain lines scripts read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

__all__ = ["STATUS_STYLES", "JobProgressBar", "is_terminal", "paint_status"]

# rich's style names (the progress bars use them too); ANSI codes for the table of `leadlawk jobs`.
STATUS_STYLES = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}
_ANSI = {"cyan": "36", "yellow": "33", "green": "32", "red": "31", "magenta": "35"}


def is_terminal(stream: TextIO) -> bool:
    """A person is reading ``stream``: it is a TTY and the terminal is not ``dumb``."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False
    return tty and os.environ.get("TERM") != "dumb"


def paint_status(status: str, padded: str | None = None) -> str:
    """``padded`` (the status as laid out) in its status's colour; ``NO_COLOR`` keeps it plain."""
    text = status if padded is None else padded
    style = STATUS_STYLES.get(status)
    if style is None or os.environ.get("NO_COLOR"):
        return text
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"


class JobProgressBar:
    """A live bar of one job on a terminal: status, leads written of the limit, found / enriched /
    written, rate, ETA, and what the job waits on. Fed the job's record (or an event's counters)
    at each poll; it draws only when fed, so no thread of its own writes to the terminal.

    Use it as a context manager: leaving it leaves the last state drawn on its own line."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=False)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("found {task.fields[found]}  enriched {task.fields[enriched]}  written {task.fields[written]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[waiting]}"),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task("queued", total=None, found=0, enriched=0, written=0, rate="", waiting="")
        self._first: tuple[float, int] | None = None

    def update(self, job: Mapping[str, Any]) -> None:
        """``job`` as ``Job.to_dict()`` or a job event: ``status``, ``counters``, ``progress``."""
        from rich.markup import escape

        counters = job.get("counters") or {}
        progress = job.get("progress") or {}
        status = str(job.get("status") or "running")
        written = int(counters.get("written") or 0)
        limit = progress.get("limit")
        finished = status in ("succeeded", "failed", "cancelled")
        # The limit is a ceiling, not a promise: a finished job's bar is full at what it wrote.
        total = written if finished else (int(limit) if isinstance(limit, int) and limit > 0 else None)
        # The rate is of this watch, not of the job's life: following a job half done counts from here.
        now = time.monotonic()
        if self._first is None:
            self._first = (now, written)
        since, written_then = self._first
        rate = f"{(written - written_then) / (now - since):.1f} leads/s" if now - since >= 1.0 else ""
        waiting = [str(w) for w in progress.get("waiting_on") or []]
        style = STATUS_STYLES.get(status, "white")
        self._progress.update(
            self._task,
            description=f"[{style}]{escape(status):<9}[/]",
            completed=written,
            total=max(total, written) if total is not None else None,
            found=counters.get("found", 0),
            enriched=counters.get("enriched", 0),
            written=written,
            rate=rate,
            waiting=f"[yellow]waiting on {escape(', '.join(waiting))}[/]" if waiting else "",
        )
        self._progress.refresh()

    def __enter__(self) -> JobProgressBar:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()
