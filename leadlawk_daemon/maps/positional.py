"""Reading Google's positional JSON arrays, where any slot may be missing or of another type."""

from __future__ import annotations

from typing import Any

__all__ = ["at"]


def at(value: Any, *path: int) -> Any:
    """``value[p0][p1]…``, or ``None`` as soon as a step is missing or not a list."""
    for index in path:
        if not isinstance(value, list) or not -len(value) <= index < len(value):
            return None
        value = value[index]
    return value
