"""The quotas one daemon shares with the others on its Redis, built from the settings.

* PageSpeed, per API key (named by :func:`~leadlawk_daemon.quota.link.quota_id`): the per-100-s
  pace (``<prefix>:quota:<id>:100s:*``) and the day's count (``<prefix>:quota:<id>:day:<date>``).
* The Google Maps politeness budget, per ``maps.politeness_scope``: ``process`` keeps each
  process's own limiter (nothing shared); ``host`` shares one budget among the daemons of a host
  (they leave by one IP address), keyed by a hash of the host name
  (``<prefix>:quota:maps:host:<id>:*``); ``fleet``, one budget for every daemon
  (``<prefix>:quota:maps:fleet:*``), for daemons behind one egress address.
"""

from __future__ import annotations

import hashlib
import math
import socket
from collections.abc import Callable
from typing import Any

from aiolimiter import AsyncLimiter

from actors.clock import Clock
from leadlawk_daemon.pagespeed.quota import WindowPacer
from leadlawk_daemon.quota.daily import SharedDailyQuota
from leadlawk_daemon.quota.link import QuotaLink, quota_id
from leadlawk_daemon.quota.pace import Pacer, SharedPacer
from leadlawk_daemon.settings import Settings

__all__ = ["SharedQuotas", "maps_scope_key", "pagespeed_share", "shared_quotas_note"]

MAPS_WINDOW = 60.0  # maps.navigations_per_minute


def pagespeed_share(quota: float, peers: int) -> float:
    """One daemon's quota per window while Redis is down: ``quota // peers``, rounded down so the
    shares never add up to more; below one call per window, the exact fraction."""
    whole = math.floor(quota) // max(1, peers)
    return float(whole) if whole >= 1 else quota / max(1, peers)


def maps_pacer(link: QuotaLink, key: str, per_minute: float) -> SharedPacer:
    """The Maps politeness budget under ``key``: ``per_minute`` navigations, one interval apart."""
    interval = MAPS_WINDOW / per_minute

    def local_maps(n: int) -> Pacer:
        # One navigation per n intervals: the budget's n-th part, spaced as before.
        return AsyncLimiter(1, interval * n)

    return SharedPacer(
        link,
        key,
        per_window=max(1, math.floor(per_minute)),
        window=MAPS_WINDOW,
        interval=interval,
        local=local_maps,
        share=lambda n: per_minute / n,
    )


def maps_scope_key(scope: str, hostname: str) -> str | None:
    """The Maps politeness budget's name in Redis for ``scope``; None for ``process`` (not shared)."""
    if scope == "host":
        return f"maps:host:{hashlib.sha256(hostname.encode()).hexdigest()[:16]}"
    if scope == "fleet":
        return "maps:fleet"
    # process: not shared; egress: one budget per exit (SharedQuotas.maps_exit), none for the host.
    return None


class SharedQuotas:
    """``SharedQuotas.from_settings(settings, clock=…)`` (None without Redis); :meth:`aclose` at the end."""

    def __init__(self, link: QuotaLink, pagespeed: SharedPacer, daily: SharedDailyQuota, maps: SharedPacer | None):
        self.link = link
        self.pagespeed = pagespeed
        self.daily = daily
        self.maps = maps
        self.maps_exits: dict[str, SharedPacer] = {}
        self.maps_per_minute = 30.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock,
        peers: Callable[[], int] | None = None,
        hostname: str | None = None,
        window: float = 100.0,
    ) -> SharedQuotas | None:
        """``window``: PageSpeed's short quota window (Google's 100 s; a benchmark's stand-in scales it)."""
        if not settings.redis.url:
            return None
        link = QuotaLink.from_url(
            settings.redis.url, settings.redis.prefix, clock=clock, timeout=settings.redis.quota_timeout, peers=peers
        )
        ps = settings.pagespeed
        key_id = quota_id(ps.api_key)
        full = WindowPacer(ps.queries_per_100s, window, clock=clock)

        def local_pagespeed(n: int) -> Pacer:
            return WindowPacer(pagespeed_share(ps.queries_per_100s, n), window, clock=clock)

        pagespeed = SharedPacer(
            link,
            f"{key_id}:100s",
            per_window=full.per_window,
            window=window,
            interval=full.interval,
            local=local_pagespeed,
            share=lambda n: WindowPacer(pagespeed_share(ps.queries_per_100s, n), window, clock=clock).per_window,
        )
        daily = SharedDailyQuota(
            link, key_id, ps.queries_per_day, ps.quota_reset_tz, clock, members=lambda: pagespeed.members
        )
        maps = None
        per_minute = settings.maps.navigations_per_minute
        scope = maps_scope_key(settings.maps.scope, hostname or socket.gethostname())
        if scope is not None:
            maps = maps_pacer(link, scope, per_minute)
        quotas = cls(link, pagespeed, daily, maps)
        quotas.maps_per_minute = per_minute
        return quotas

    def maps_exit(self, exit_hash: str) -> SharedPacer:
        """One Maps exit's own budget (``politeness_scope: egress``), shared by every daemon on this
        Redis that goes out through the same exit: ``<prefix>:quota:maps:egress:<exit hash>:*``."""
        pacer = self.maps_exits.get(exit_hash)
        if pacer is None:
            pacer = self.maps_exits[exit_hash] = maps_pacer(
                self.link, f"maps:egress:{exit_hash}", self.maps_per_minute
            )
        return pacer

    async def aclose(self) -> None:
        await self.link.aclose()

    def report(self) -> dict[str, Any]:
        """This daemon's share and use of each shared quota, for the fleet registry and /health."""
        report: dict[str, Any] = {
            "redis": "up" if self.link.up else "down",
            "pagespeed_100s": self.pagespeed.report(),
            "pagespeed_day": self.daily.report(),
        }
        if self.maps is not None:
            report["maps_politeness"] = self.maps.report()
        for exit_hash, pacer in self.maps_exits.items():
            report[f"maps_egress_{exit_hash[:8]}"] = pacer.report()
        return report


def shared_quotas_note(quotas: SharedQuotas) -> str | None:
    """What ``/health/ready`` says while Redis is unreachable: degraded (paced at a local share), not down."""
    if quotas.link.up:
        return None
    pace = quotas.pagespeed.report()
    return (
        f"Redis unreachable: PageSpeed paced at this daemon's local share, {pace['share']} of "
        f"{pace['per_window']} per {pace['window_s']:g} s ({pace['peers']} daemons last seen)"
    )
