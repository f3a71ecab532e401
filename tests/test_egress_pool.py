"""The egress pool without a browser: the exits read from the settings (names, hashes,
credentials never in config), least-loaded routing with a cap, one exit's block opening that exit
alone, its cool-down and half-open trial, and the Maps breaker hearing only the last exit."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from actors.clock import FakeClock
from leadlawk_daemon.maps.area_search import search_area
from leadlawk_daemon.maps.blocking import BlockedError
from leadlawk_daemon.maps.browser import UnreachableError
from leadlawk_daemon.maps.coverage import CoveragePlan
from leadlawk_daemon.maps.egress_exits import EgressConfigError, resolve_exits
from leadlawk_daemon.maps.egress_pool import EgressPool, ExitBreaker, ExitState, ExitUnavailable
from leadlawk_daemon.maps.scraper import Emit, ScrapeRequest
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.outcomes import ScrapeOutcome
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.settings import ConfigError, MapsSettings, load_settings
from tests.test_area_planner import BOX, FakeMaps, plan_for, world

BASE = {
    "base_url": "http://x",
    "language": "en",
    "navigations_per_minute": 30,
    "navigation_timeout": 5,
    "scroll_timeout": 5,
    "max_idle_scrolls": 2,
}


def maps(**kw: Any) -> MapsSettings:
    return MapsSettings(**{**BASE, **kw})


# -- the exits -------------------------------------------------------------------------------------


def test_exits_are_named_by_name_or_hash_and_never_by_url_or_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "p2"
    creds.write_text("alice:file-secret-123\n")
    settings = maps(
        egress=[
            "direct",
            "http://bob:${P1_PASSWORD}@127.0.0.1:3128",
            {"url": "https://proxy.example:8443", "name": "eu-1", "credentials_file": str(creds)},
            "socks5://127.0.0.1:1080",
        ]
    )
    exits = resolve_exits(settings, environ={"P1_PASSWORD": "env-secret-456"}, hostname="h1")
    assert exits[0].name == "direct"
    assert exits[2].name == "eu-1"
    assert exits[1].name.startswith("p-")
    assert len(exits[1].name) == 10
    assert exits[1].playwright_proxy() == {
        "server": "http://127.0.0.1:3128",
        "username": "bob",
        "password": "env-secret-456",
    }
    assert exits[2].playwright_proxy() == {
        "server": "https://proxy.example:8443",
        "username": "alice",
        "password": "file-secret-123",
    }
    assert exits[3].playwright_proxy() == {"server": "socks5://127.0.0.1:1080"}
    for e in exits:
        shown = f"{e!r} {e}"
        assert "secret" not in shown
        assert "127.0.0.1" not in shown
        assert "bob" not in shown
    # The hash is the proxy's identity, whatever its name: daemons share its budget.
    again = resolve_exits(maps(egress=[{"url": "http://127.0.0.1:3128", "name": "x"}]), environ={}, hostname="h2")
    assert again[0].hash == exits[1].hash


def test_a_password_written_into_the_config_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"LEADLAWK__MAPS__EGRESS": '["http://bob:hunter2@127.0.0.1:3128"]'})
    text = "\n".join(refused.value.problems)
    assert "maps.egress" in text
    assert "${ENV_NAME}" in text
    assert "hunter2" not in text


def test_missing_credentials_and_clashes_are_named() -> None:
    with pytest.raises(EgressConfigError, match="P9 is not set"):
        resolve_exits(maps(egress=["http://u:${P9}@127.0.0.1:1"]), environ={})
    with pytest.raises(EgressConfigError, match="listed twice"):
        resolve_exits(maps(egress=["http://127.0.0.1:1", "http://127.0.0.1:1/"]), environ={})
    with pytest.raises(EgressConfigError, match="SOCKS5"):
        resolve_exits(maps(egress=["socks5://u:${P}@127.0.0.1:1"]), environ={"P": "pppp"})


def test_scope_is_egress_by_default_with_more_than_one_exit() -> None:
    assert maps().scope == "host"
    assert maps(egress=["direct", "http://127.0.0.1:1"]).scope == "egress"
    assert maps(egress=["direct", "http://127.0.0.1:1"], politeness_scope="fleet").scope == "fleet"


# -- routing and blocks ----------------------------------------------------------------------------


def pool(n: int, clock: FakeClock, metrics: Metrics | None = None, cap: int = 2) -> EgressPool:
    exits = resolve_exits(
        maps(egress=[{"url": f"http://127.0.0.1:{9000 + i}", "name": f"e{i}"} for i in range(n)]), environ={}
    )
    return EgressPool(
        exits, clock=clock, max_in_flight=cap, cooldown=30.0, max_cooldown=600.0, metrics=metrics, rng=random.Random(1)
    )


async def test_least_loaded_exit_with_a_cap_per_exit() -> None:
    clock = FakeClock()
    p = pool(3, clock, cap=1)
    async with p.lease() as a, p.lease() as b, p.lease() as c:
        assert {a.name, b.name, c.name} == {"e0", "e1", "e2"}
        fourth = asyncio.create_task(_lease_name(p))
        await asyncio.sleep(0.01)
        assert not fourth.done()  # every exit at its cap: it waits
    assert await asyncio.wait_for(fourth, 1.0) in {"e0", "e1", "e2"}


async def _lease_name(p: EgressPool) -> str:
    async with p.lease() as h:
        return h.name


async def test_a_block_opens_that_exit_alone_which_cools_down_and_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    clock, metrics = FakeClock(), Metrics(process=False)
    p = pool(2, clock, metrics)
    maps_breaker = CircuitBreaker("google_maps", failure_threshold=1, reset_timeout=60, call_timeout=None, clock=clock)
    e0 = p.exits[0]

    async def blocked() -> None:
        raise BlockedError("the /sorry/ page", "http://x/sorry/index")

    caplog.set_level(logging.INFO, "leadlawk.egress")
    with pytest.raises(ExitUnavailable):
        await ExitBreaker(p, e0, maps_breaker).call(blocked)
    assert e0.state is ExitState.OPEN
    assert p.exits[1].state is ExitState.CLOSED
    assert maps_breaker.state is BreakerState.CLOSED  # the other exit is healthy: no outage
    assert metrics.egress_state.labels(egress="e0")._value.get() == 2
    assert metrics.egress_blocks.labels(egress="e0")._value.get() == 1
    changes = [r for r in caplog.records if r.getMessage() == "egress exit changed"]
    assert len(changes) == 1
    assert vars(changes[0])["egress"] == "e0"
    assert vars(changes[0])["reason"] == "the /sorry/ page"
    # While it cools down every lease goes to the other exit.
    for _ in range(3):
        assert await _lease_name(p) == "e1"
    cooldown = e0.open_until - clock.monotonic()
    assert 15.0 <= cooldown <= 30.0  # EQUAL jitter over the first cool-down
    await clock.advance(cooldown + 0.1)

    async def ok() -> str:
        return "read"

    async with p.lease() as trial, p.lease() as other:
        assert trial is e0
        assert trial.state is ExitState.HALF_OPEN
        assert other is p.exits[1]
        assert await ExitBreaker(p, trial, maps_breaker).call(ok) == "read"
    assert e0.state.value == "closed"


async def test_a_failed_trial_cools_down_longer() -> None:
    clock = FakeClock()
    p = pool(2, clock)
    e0 = p.exits[0]
    p.failed(e0, UnreachableError("net::ERR_PROXY_CONNECTION_FAILED"))
    first = e0.open_until - clock.monotonic()
    await clock.advance(first + 0.1)
    async with p.lease() as trial:
        assert trial is e0
        p.failed(trial, UnreachableError("net::ERR_PROXY_CONNECTION_FAILED"))
    assert e0.state is ExitState.OPEN
    assert e0.blocks_in_row == 2
    assert e0.open_until - clock.monotonic() >= 30.0  # the second cool-down: 30 to 60 s


async def test_only_the_last_exit_standing_feeds_the_maps_breaker() -> None:
    clock = FakeClock()
    p = pool(2, clock)
    maps_breaker = CircuitBreaker("google_maps", failure_threshold=1, reset_timeout=60, call_timeout=None, clock=clock)

    async def blocked() -> None:
        raise BlockedError("an empty results feed", "http://x/maps/search/a")

    with pytest.raises(ExitUnavailable):
        await ExitBreaker(p, p.exits[0], maps_breaker).call(blocked)
    with pytest.raises(BlockedError):
        await ExitBreaker(p, p.exits[1], maps_breaker).call(blocked)
    assert p.all_open
    assert maps_breaker.state is BreakerState.OPEN  # every exit open: Google's outage
    # A lease still goes out, through the exit that comes back first, paced by the Maps breaker.
    assert await _lease_name(p) in {"e0", "e1"}


# -- an area searched through several exits at once -------------------------------------------------


class ManyExits:
    """A searcher over FakeMaps: every search takes a moment; some fail once with ExitUnavailable."""

    def __init__(self, maps: FakeMaps, fail_every: int = 0) -> None:
        self.maps = maps
        self.running = 0
        self.most = 0
        self.calls = 0
        self.fail_every = fail_every

    async def scrape(self, request: ScrapeRequest, emit: Emit, already_emitted: Collection[str]) -> ScrapeOutcome:
        assert request.viewport is not None
        self.calls += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.001 * (self.calls % 3))
            listed = self.maps.search(request.viewport)
            for rank, place in enumerate(listed, 1):
                await emit(place, rank)  # type: ignore[arg-type]
            if self.fail_every and self.calls % self.fail_every == 0:
                raise ExitUnavailable("e1", "the /sorry/ page")  # a partial list, then the exit fails
        finally:
            self.running -= 1
        return ScrapeOutcome(len(listed), len(listed), 0, 0, 0, 0, "end_of_list", True)


async def _area(width: int, fail_every: int = 0) -> tuple[list[tuple[str, int]], CoveragePlan, ManyExits]:
    plan = plan_for(BOX)
    searcher = ManyExits(FakeMaps(world()), fail_every)
    emitted: list[tuple[str, int]] = []

    async def emit(listing: Any, rank: int) -> None:
        emitted.append((listing.place_id, rank))

    await search_area(searcher, plan, ScrapeRequest("plumbers"), emit, width=width)
    return emitted, plan, searcher


async def test_an_area_through_four_exits_emits_what_one_exit_does_in_the_same_order() -> None:
    one, plan_one, _ = await _area(1)
    four, plan_four, searcher = await _area(4)
    assert searcher.most == 4  # four cells searched at once
    assert four == one  # same places, same ranks, none twice
    assert len({place for place, _ in four}) == len(four)
    assert plan_four.to_json() == plan_one.to_json()


async def test_a_cell_whose_exit_fails_is_searched_again_and_its_partial_list_dropped() -> None:
    one, _, _ = await _area(1)
    rerouted, _, searcher = await _area(4, fail_every=5)
    assert rerouted == one
    assert searcher.calls > len(one) // 120  # some searches ran twice
