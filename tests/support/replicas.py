"""The offline replicas as fixtures, one definition each; a module says how it wants them by a mark.

A test module that needs a replica other than the default states it where it is used::

    pytestmark = pytest.mark.sites_replica(seed=4)

The mark's keywords go to the replica's ``serve_*`` function unchanged (``maps_replica`` and
``pagespeed_replica`` also take ``faults``: a ``/_faults`` body set before the first test sees it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from leadlawk_daemon.replicas.dns import DnsReplica, serve_dns_replica
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica
from leadlawk_daemon.replicas.sites import SitesReplica, serve_sites_replica

MARKS = {
    "maps_replica": "the Maps replica's settings for the maps_replica and maps_url fixtures (its keywords, and faults)",
    "pagespeed_replica": "the PageSpeed stand-in's settings for the pagespeed_url fixture (its keywords, and faults)",
    "sites_replica": "the websites replica's settings for the sites_replica fixture (seed)",
}

QUERY, LOCATION = "plumbers", "Omaha, NE"


def _settings(request: pytest.FixtureRequest, mark: str) -> dict[str, Any]:
    found = request.node.get_closest_marker(mark)
    return dict(found.kwargs) if found is not None else {}


async def _set_faults(http: aiohttp.ClientSession, base_url: str, faults: dict[str, Any]) -> None:
    async with http.post(f"{base_url}/_faults", json=faults) as resp:
        assert resp.status == 200, await resp.text()


class MapsReplica:
    """A running Maps replica and a client for its control endpoints (answers, faults, sessions)."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.http = http

    async def answer_sheet(self, query: str = QUERY, location: str = LOCATION) -> dict[str, Any]:
        """The whole ``/_answers`` body: the answers and what the limited view hides."""
        params = {"q": query, "location": location}
        async with self.http.get(f"{self.base_url}/_answers", params=params) as resp:
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json()
            return body

    async def answers(self, query: str = QUERY, location: str = LOCATION) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = (await self.answer_sheet(query, location))["answers"]
        return answers

    async def faults(self, **settings: Any) -> None:
        await _set_faults(self.http, self.base_url, settings)

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(f"{self.base_url}/_stats") as resp:
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json()
            return body

    async def page(self, path: str, cookies: dict[str, str] | None = None) -> str:
        async with self.http.get(f"{self.base_url}{path}", cookies=cookies) as resp:
            resp.raise_for_status()
            return await resp.text()

    async def new_session(self) -> dict[str, Any]:
        async with self.http.post(f"{self.base_url}/_session") as resp:
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json()
            return body

    async def expire_sessions(self) -> int:
        async with self.http.post(f"{self.base_url}/_session/expire") as resp:
            resp.raise_for_status()
            expired: int = (await resp.json())["expired"]
            return expired


# Module-scoped: a module's browser tests share one replica (the xdist grouping in conftest.py
# keeps such a module on one worker, so it is started once).
@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def maps_replica(request: pytest.FixtureRequest) -> AsyncIterator[MapsReplica]:
    """The Maps replica for the whole module, with a client session."""
    async with (
        _served(serve_maps_replica, _settings(request, "maps_replica")) as base_url,
        aiohttp.ClientSession() as http,
    ):
        yield MapsReplica(base_url, http)


@asynccontextmanager
async def _served(
    serve: Callable[..., AbstractAsyncContextManager[str]], settings: dict[str, Any]
) -> AsyncIterator[str]:
    """A replica served on a free port, with the mark's ``faults`` (if any) set before it is used."""
    faults = settings.pop("faults", None)
    async with serve("127.0.0.1", 0, **settings) as base_url:
        if faults is not None:
            async with aiohttp.ClientSession() as http:
                await _set_faults(http, base_url, faults)
        yield base_url


@pytest.fixture
async def maps_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The base URL of a Maps replica of this test's own (a daemon under test points at it)."""
    async with _served(serve_maps_replica, _settings(request, "maps_replica")) as base_url:
        yield base_url


@pytest.fixture
async def pagespeed_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The base URL of a PageSpeed stand-in of this test's own."""
    async with _served(serve_pagespeed_replica, _settings(request, "pagespeed_replica")) as base_url:
        yield base_url


@pytest.fixture
async def sites_replica(request: pytest.FixtureRequest) -> AsyncIterator[SitesReplica]:
    """The websites replica (an HTTP proxy serving generated small-business sites) of this test's own."""
    async with serve_sites_replica(**_settings(request, "sites_replica")) as running:
        yield running


@pytest.fixture
async def dns_replica() -> AsyncIterator[DnsReplica]:
    """The DNS replica (the websites replica's mail domains, seed 0) of this test's own: its
    ``server`` is the ``emails.dns_servers`` entry; ``set_down`` takes it down and back."""
    async with serve_dns_replica() as running:
        yield running
