"""What the CLI shows a person at a terminal, and only there: colours and live progress.

Whether a stream is a terminal decides it; a pipe, a file or a Procfile's log collector gets the
plain lines scripts read.
"""

from __future__ import annotations

import os
from typing import TextIO

__all__ = ["STATUS_STYLES", "is_terminal", "paint_status"]

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
