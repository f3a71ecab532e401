"""Shared fixtures: real PostgreSQL and Redis, each test isolated; the corpus; async error detection."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis  # noqa: F401  # imported early: a lazy import inside a failure report trips a CPython 3.11.7 AST bug
import pytest
import redis.asyncio as aioredis
import uvloop

from tests.databases import create_database, drop_database, throwaway_database

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "maps"
PG_ADMIN_DSN = os.environ.get("LEADLAWK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("LEADLAWK_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the Google Maps corpus is not beside this clone ({CORPUS})")
    return CORPUS


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped at the end."""
    dsn = asyncio.run(create_database(PG_ADMIN_DSN, "leadlawk_test"))
    yield dsn
    asyncio.run(drop_database(PG_ADMIN_DSN, dsn))


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"lltest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_TEST_URL)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{redis_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Tests run on uvloop, as the daemon does."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
async def _fail_on_loop_errors() -> AsyncIterator[None]:
    """An exception nobody retrieved (a lost task's error) fails the test that caused it."""
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled errors in the event loop: {errors}"


@pytest.fixture
async def fresh_pg() -> AsyncIterator[str]:
    """A PostgreSQL database of this test's own, for daemons run as separate processes."""
    async with throwaway_database(PG_ADMIN_DSN, "leadlawk_t") as dsn:
        yield dsn
