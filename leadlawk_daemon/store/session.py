"""The two ports between the one store and a database driver: a :class:`Database` hands out
:class:`Session`\\ s, and a session runs the store's SQL.

A backend (:mod:`.postgres`, :mod:`.sqlite`) implements both: how a connection is had and given
back, what a transaction is, how Python values travel to and from its columns, which driver
errors mean "unreachable" (:class:`~.base.StoreUnavailable`) and which a refused row
(:class:`RowRefused`), and how a batch of leads is loaded in bulk. It holds no query of its own
beyond that glue: every query of the store lives in the module of the concept that owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from leadlawk_daemon.store.dialect import Dialect

__all__ = ["Database", "RowRefused", "Session"]


class RowRefused(ValueError):
    """A row the database refused (a missing reference, a duplicate key): a fact about the data,
    which the store method names before passing it on. A ``ValueError``, as the :class:`~.base.Store`
    protocol promises for rows that cannot be stored."""


class Session(Protocol):
    """One connection for one operation. Queries are written with ``$1``-style parameters; values
    are Python's (``datetime``, ``date``, ``dict``/``list`` for JSON columns) both ways."""

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """The rows, each a dict by column name."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """How many rows the statement changed."""
        ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def script(self, sql: str) -> None:
        """Several statements with no parameters (a migration file)."""
        ...

    def atomic(self) -> AbstractAsyncContextManager[None]:
        """Statements that commit together within a longer session (one migration)."""
        ...


class Database(Protocol):
    """A database the store talks to, through sessions."""

    dialect: Dialect
    write_parallelism: int
    """How many sessions one large lead batch may be split over (1: the database has one writer)."""

    def reading(self) -> AbstractAsyncContextManager[Session]:
        """A session for reads: no transaction is held."""
        ...

    def writing(self) -> AbstractAsyncContextManager[Session]:
        """A session whose statements commit together when it ends, and none of them if it raises."""
        ...

    def migrating(self) -> AbstractAsyncContextManager[Session]:
        """A session holding the database's migration lock: two processes migrate one after the other."""
        ...

    async def load_leads(self, insert: str, on_conflict: str, values: Sequence[tuple[Any, ...]], now: datetime) -> None:
        """Upsert lead rows (:func:`~.batch.lead_values` order, ``now`` their sighting) in one
        transaction, by the fastest bulk path the database has, as ``insert`` (the statement's
        head, naming the columns) followed by the rows and ``on_conflict``."""
        ...
