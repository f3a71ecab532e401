"""What the store's SQL says differently on PostgreSQL and on SQLite, and nothing else.

The store's queries are written once, in PostgreSQL's parameter style (``$1``) with standard
``CAST``s, and take from a :class:`Dialect` the few fragments the two databases spell apart: the
database's own clock, a time some seconds after it, the larger of two values, insertion order and
row locks. Each backend module holds its dialect; :meth:`Dialect.sql` gives a query its parameter
style.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from leadlawk_daemon.store.migrations import Dialect as DialectName

__all__ = ["Dialect"]

_NUMBERED = re.compile(r"\$(\d+)")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: DialectName
    now: str
    """The database's own clock, in the form its timestamp columns hold: leases read only this one,
    so daemons whose wall clocks disagree still agree on who holds a job."""
    later: str
    """:attr:`now` plus ``{seconds}`` seconds (an SQL expression)."""
    greatest: str
    """The function giving the larger of its arguments (``GREATEST``, or SQLite's scalar ``MAX``)."""
    insertion_order: str
    """The ``jobs`` column that orders rows created in the same instant."""
    lock_rows: str
    """Appended to a ``SELECT`` of rows its transaction will change (empty where a writing
    transaction holds the whole database already)."""
    skip_locked: str
    """Appended to a ``SELECT`` choosing a row to take: rows another writer holds are passed over."""
    timestamp_type: str
    param_marker: str
    """What a numbered parameter ``$n`` is written as: ``$`` on PostgreSQL, ``?`` on SQLite."""

    def seconds_after_now(self, seconds: str) -> str:
        return self.later.format(seconds=seconds)

    def sql(self, text: str) -> str:
        """``text`` (written with ``$1``, ``$2``…) in this dialect's parameter style."""
        return text if self.param_marker == "$" else _renumbered(text, self.param_marker)


@functools.lru_cache(maxsize=512)
def _renumbered(text: str, marker: str) -> str:
    # Queries are built once per dialect, so each is translated once and then found here.
    return _NUMBERED.sub(lambda m: f"{marker}{m.group(1)}", text)
