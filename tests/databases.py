"""Throwaway PostgreSQL databases on the shared test server, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

__all__ = ["create_database", "drop_database", "throwaway_database"]


async def create_database(admin_dsn: str, prefix: str) -> str:
    """A new, empty database beside ``admin_dsn``'s; its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_dsn.rsplit('/', 1)[0]}/{name}"


async def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop it, even with clients still connected (a killed daemon's, say)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str, prefix: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_dsn, prefix)
    try:
        yield dsn
    finally:
        await drop_database(admin_dsn, dsn)
