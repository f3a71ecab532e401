"""``open_store``: the backend a database URL names, as an async context manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from actors.clock import Clock
from leadlawk_daemon.settings import DatabaseSettings
from leadlawk_daemon.store.base import Store
from leadlawk_daemon.store.postgres import open_postgres
from leadlawk_daemon.store.sqlite import open_sqlite

__all__ = ["open_store", "open_store_from_settings"]


@asynccontextmanager
async def open_store(
    url: str,
    *,
    pool_min: int = 1,
    pool_max: int = 8,
    connect_timeout: float = 5.0,
    command_timeout: float = 30.0,
    clock: Clock | None = None,
    migrate: bool = False,
    write_parallelism: int = 2,
) -> AsyncIterator[Store]:
    """``postgresql://…`` (or ``postgres://…``) opens an asyncpg pool, ``sqlite:///path`` a SQLite file.

    ``migrate=True`` brings the schema up to date before the store is handed out.
    """
    if url.startswith(("postgresql://", "postgres://")):
        async with open_postgres(
            url,
            pool_min=pool_min,
            pool_max=pool_max,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            clock=clock,
            write_parallelism=write_parallelism,
        ) as pg:
            if migrate:
                await pg.migrate()
            yield pg
    elif url.startswith("sqlite:///"):
        async with open_sqlite(url, busy_timeout=command_timeout, clock=clock) as lite:
            if migrate:
                await lite.migrate()
            yield lite
    else:
        scheme = url.split(":", 1)[0] if ":" in url else url[:20]
        raise ValueError(f"database URL must start with postgresql:// or sqlite:///, got scheme {scheme!r}")


def open_store_from_settings(
    database: DatabaseSettings, clock: Clock | None = None, migrate: bool = False
) -> AbstractAsyncContextManager[Store]:
    """:func:`open_store` with the ``database:`` section of the configuration."""
    return open_store(
        database.url,
        pool_min=database.pool_min,
        pool_max=database.pool_max,
        connect_timeout=database.connect_timeout,
        command_timeout=database.command_timeout,
        clock=clock,
        migrate=migrate,
        write_parallelism=database.write_parallelism,
    )
