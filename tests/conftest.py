"""Shared fixtures: real PostgreSQL and Redis, each test isolated; the corpus; async error detection.

The suite runs in parallel (``make check``: pytest-xdist, ``--dist loadgroup``). Each worker is a
process of its own with its own session database; every test's Redis keys, files and ports are its
own. Two marks are applied here at collection, so no test file has to remember them:

- ``fast``: the test needs no daemon, browser, PostgreSQL or Redis, and measures no CPU time
  (``make test-fast`` runs these);
- ``xdist_group``: a test that shares a module-scoped fixture (one daemon or browser for the whole
  file) runs on the same worker as the rest of its file, so that fixture is set up once, not per worker.
"""

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
from tests.support.ops_db import db  # noqa: F401  # shared fixtures: pytest finds them by name here
from tests.support.replicas import (  # noqa: F401
    MARKS,
    dns_replica,
    maps_replica,
    maps_url,
    pagespeed_url,
    sites_replica,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "maps"
PG_ADMIN_DSN = os.environ.get("LEADLAWK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("LEADLAWK_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the Google Maps corpus is not beside this clone ({CORPUS})")
    return CORPUS


# A test that uses one of these fixtures, directly or through another, talks to a real server.
SERVICE_FIXTURES = frozenset({"pg_database", "fresh_pg", "redis_client", "redis_prefix"})
# A test module holding one of these names starts a daemon, a browser or a CLI process, or reaches
# PostgreSQL or Redis without a fixture: none of its tests is fast.
SERVICE_NAMES = frozenset({
    "DaemonProcess", "PtyProcess", "chaos_rig", "run_scenario", "async_playwright", "BrowserPool",
    "PG_ADMIN_DSN", "REDIS_TEST_URL", "throwaway_database", "subprocess",
})
SERVICE_MARKS = ("browser", "chaos", "matrix", "long")
# Not a unit test though it needs no server: a parser's cost measured in CPU time at a size and its
# double (tests/linearity.py), a benchmark of its shape. make check and make fuzz run these.
BENCH_MARKS = ("linearity",)
# A fixture parametrized over backends asks for the server's fixture at run time
# (request.getfixturevalue), out of the collector's sight: its parameter names the server.
SERVICE_PARAMS = frozenset({"postgres"})


def worker_id() -> str:
    """The pytest-xdist worker running this process ("gw0", "gw1", ...); "main" when not in parallel."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure(config: pytest.Config) -> None:
    for mark, meaning in MARKS.items():
        config.addinivalue_line("markers", f"{mark}: {meaning}")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A worker starts with COLUMNS=80 and LINES=24 in its environment (the size readline finds
        # without a terminal), and every CLI a test starts on a pseudo-terminal would inherit them:
        # rich would draw for 80 columns, not for the terminal the test opened.
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)


def _needs_services(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(mark) for mark in SERVICE_MARKS):
        return True
    if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and SERVICE_PARAMS & {str(value) for value in callspec.params.values()}:
        return True
    module = getattr(item, "module", None)
    return module is not None and (
        any(name in vars(module) for name in SERVICE_NAMES) or any(map(_starts_services, vars(module).values()))
    )


def _starts_services(value: object) -> bool:
    """A helper imported from another test module whose own code reaches for one of those names
    (``tests.test_cli_control.cli`` runs ``subprocess``): its callers are not unit tests either."""
    code = getattr(value, "__code__", None)
    return code is not None and bool(SERVICE_NAMES & set(code.co_names))


def _module_scoped(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "package", "class") for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks to group the tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not _needs_services(item) and not any(item.get_closest_marker(mark) for mark in BENCH_MARKS):
            item.add_marker(pytest.mark.fast)
        if _module_scoped(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this worker's session; dropped at the end.

    The name carries the xdist worker's id (beside a random part), so a database left behind by a
    killed run says which worker made it.
    """
    dsn = asyncio.run(create_database(PG_ADMIN_DSN, f"leadlawk_test_{worker_id()}"))
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
    async with throwaway_database(PG_ADMIN_DSN, f"leadlawk_t_{worker_id()}") as dsn:
        yield dsn
