"""The Maps replica's per-client blocking: a sliding minute per client address, /sorry/ past it for
a cool-down, and /_stats counting navigations and blocks per address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.maps_ratelimit import ClientLimiter, RateLimit, parse_rate_limit
from tests.waiting import eventually

SEARCH = "/maps/search/plumbers+in+Omaha,+NE"
FEED = "/maps/_feed?q=plumbers&location=Omaha,+NE&offset=20"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limit(per_minute: int, cooldown_s: float, **clients: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_rate_limit({"per_minute": per_minute, "cooldown_s": cooldown_s, "clients": clients})
    assert parsed is not None
    return parsed


# -- the limiter, on an injected clock ------------------------------------------------------------


def test_past_the_threshold_a_client_is_blocked_for_the_cool_down_then_starts_afresh() -> None:
    clock = FakeClock()
    limiter = ClientLimiter(clock)
    rule = limit(3, 30)
    assert [limiter.navigate("10.0.0.1", rule) for _ in range(4)] == [True, True, True, False]
    clock.now += 29.9
    assert not limiter.navigate("10.0.0.1", rule)  # still cooling down; does not extend it
    assert limiter.blocked_fetch("10.0.0.1", rule)
    clock.now += 0.1
    assert [limiter.navigate("10.0.0.1", rule) for _ in range(4)] == [True, True, True, False]
    assert limiter.report() == {"10.0.0.1": {"navigations": 9, "blocks": 4}}


def test_the_window_slides() -> None:
    clock = FakeClock()
    limiter = ClientLimiter(clock)
    rule = limit(2, 10)
    assert limiter.navigate("a", rule)
    clock.now += 40
    assert limiter.navigate("a", rule)
    clock.now += 20.5  # the first navigation left the window
    assert limiter.navigate("a", rule)
    assert not limiter.navigate("a", rule)  # two within the last minute already


def test_each_address_has_its_own_window_and_overrides_apply_to_theirs() -> None:
    clock = FakeClock()
    limiter = ClientLimiter(clock)
    rule = limit(5, 60, **{"127.0.0.12": {"per_minute": 1}})
    assert [limiter.navigate("127.0.0.12", rule) for _ in range(2)] == [True, False]
    assert all(limiter.navigate("127.0.0.11", rule) for _ in range(5))
    assert RateLimit.from_setting(rule).for_client("127.0.0.12").cooldown_s == 60.0  # from the default
    assert not limiter.blocked_fetch("127.0.0.11", rule)


def test_without_the_fault_navigations_are_counted_and_never_blocked() -> None:
    limiter = ClientLimiter(FakeClock())
    assert all(limiter.navigate("a", None) for _ in range(500))
    assert limiter.report() == {"a": {"navigations": 500, "blocks": 0}}
    limiter.reset_stats()
    assert limiter.report() == {}


def test_switching_the_fault_off_ends_a_cool_down() -> None:
    limiter = ClientLimiter(FakeClock())
    rule = limit(0, 600)
    assert not limiter.navigate("a", rule)
    assert limiter.navigate("a", None)


@pytest.mark.parametrize(
    "setting",
    [
        True,
        {"per_minute": 3},
        {"per_minute": -1, "cooldown_s": 5},
        {"per_minute": 3, "cooldown_s": 0},
        {"per_minute": 3, "cooldown_s": float("nan")},
        {"per_minute": "3", "cooldown_s": 5},
        {"per_minute": 3, "cooldown_s": 5, "burst": 2},
        {"per_minute": 3, "cooldown_s": 5, "clients": {"proxy-1": {"per_minute": 1}}},
        {"per_minute": 3, "cooldown_s": 5, "clients": {"127.0.0.1": {"per_minute": True}}},
    ],
)
def test_bad_settings_are_refused(setting: Any) -> None:
    with pytest.raises(ValueError, match=r"rate_limit|expected"):
        parse_rate_limit(setting)


# -- the replica, with real client addresses ------------------------------------------------------


@pytest.fixture
async def replica() -> AsyncIterator[str]:
    async with serve_maps_replica() as base_url:
        yield base_url


def session_from(address: str) -> aiohttp.ClientSession:
    """A client whose connections leave from ``address`` (a loopback address of its own)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_a_client_over_its_limit_gets_the_sorry_page_while_others_go_on(replica: str) -> None:
    async with session_from("127.0.0.11") as eleven, session_from("127.0.0.12") as twelve:
        faults = {"rate_limit": {"per_minute": 3, "cooldown_s": 2}}
        async with eleven.post(f"{replica}/_faults", json=faults) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["active"] == {"rate_limit": {"per_minute": 3, "cooldown_s": 2}}
        for _ in range(3):
            async with eleven.get(f"{replica}{SEARCH}") as served:
                assert served.status == 200
        async with eleven.get(f"{replica}{SEARCH}") as blocked:
            assert blocked.status == 429
            assert blocked.url.path == "/sorry/index"
            assert 'id="captcha-form"' in await blocked.text()
        async with eleven.get(f"{replica}{FEED}") as feed:
            assert feed.status == 429
        async with twelve.get(f"{replica}{SEARCH}") as other:
            assert other.status == 200
        async with eleven.get(f"{replica}/_stats") as response:
            clients = (await response.json())["clients"]
        assert clients == {
            "127.0.0.11": {"navigations": 4, "blocks": 2},
            "127.0.0.12": {"navigations": 1, "blocks": 0},
        }

        async def served_again() -> bool:
            async with eleven.get(f"{replica}{SEARCH}") as response:
                return response.status == 200

        await eventually(served_again, within=10, what="127.0.0.11 served again after its cool-down", every=0.1)
        async with eleven.post(f"{replica}/_stats/reset") as response:
            assert (await response.json())["clients"] == {}


async def test_blocks_by_the_sorry_fault_are_counted_for_the_client_too(replica: str) -> None:
    async with session_from("127.0.0.13") as client:
        async with client.post(f"{replica}/_faults", json={"sorry": 1}) as response:
            assert response.status == 200
        async with client.get(f"{replica}{SEARCH}") as blocked:
            assert blocked.status == 429
        async with client.get(f"{replica}{SEARCH}") as served:
            assert served.status == 200
        async with client.get(f"{replica}/_stats") as response:
            clients = (await response.json())["clients"]
        assert clients == {"127.0.0.13": {"navigations": 2, "blocks": 1}}


async def test_a_bad_rate_limit_changes_nothing(replica: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{replica}/_faults", json={"rate_limit": {"per_minute": 2}}) as response:
            assert response.status == 400
            assert "cooldown_s" in (await response.json())["error"]
        async with client.get(f"{replica}/_faults") as response:
            assert (await response.json())["active"] == {}
