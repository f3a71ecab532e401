"""The fleet registry: every daemon sharing one Redis, each under ``<prefix>:fleet:<id>``.

A daemon writes its own entry (one JSON object: id, host, pid, version, start time, jobs held,
breakers, its quota share and use) with a TTL (``redis.fleet_ttl``, 15 s) and renews it every
third of the TTL, so one lost heartbeat never drops a live daemon. One that stops gracefully
deletes its entry; a dead one's lapses within the TTL. There is no membership set beside the
entries: a set would outlive a SIGKILLed daemon, an entry with a TTL cannot.

Each heartbeat also reads the fleet back and remembers how many daemons it saw
(:meth:`FleetRegistry.last_seen_alive`): the shared quota's fallback divides the quota by that
number while Redis is unreachable, so the number keeps its last value through an outage.

Without Redis the fleet is this daemon alone: :meth:`members` is its own entry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from actors.clock import Clock, MonotonicClock
from actors.racing import unless_set
from leadlawk_daemon import __version__
from leadlawk_daemon.intake.reconnect import REDIS_ERRORS, Reconnect
from leadlawk_daemon.intake.service import Service
from leadlawk_daemon.logs import redact

__all__ = ["FleetRegistry", "FleetUnavailable", "Identity", "fleet_key", "read_members"]

log = logging.getLogger("leadlawk.fleet")

# How long a graceful stop may spend deleting the entry: shutdown must not wait on Redis.
_DEREGISTER_TIMEOUT = 1.0
_SCAN_COUNT = 500
# Redis lost, refused, or so slow that a beat ran past its bound.
_UNREACHABLE: tuple[type[BaseException], ...] = (*REDIS_ERRORS, TimeoutError)


class FleetUnavailable(Exception):
    """The fleet cannot be read now (Redis unreachable)."""


def fleet_key(prefix: str, member_id: str) -> str:
    return f"{prefix}:fleet:{member_id}"


async def read_members(redis: aioredis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Every live entry under ``<prefix>:fleet:``, oldest daemon first. Redis errors propagate."""
    keys = [key async for key in redis.scan_iter(match=fleet_key(prefix, "*"), count=_SCAN_COUNT)]
    if not keys:
        return []
    members: list[dict[str, Any]] = []
    for raw in await redis.mget(keys):
        if raw is None:
            continue  # lapsed between the scan and the read
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # not ours: the fleet table shows daemons, not whatever else sits under the prefix
        if isinstance(record, dict):
            members.append(record)
    members.sort(key=lambda m: (str(m.get("started_at", "")), str(m.get("id", ""))))
    return members


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a daemon is, for as long as its process lives."""

    id: str  # short and hostless: also the ``instance`` label of the metrics, which are public
    owner: str  # the lease owner in the jobs table (host:pid:id)
    host: str
    pid: int
    version: str
    started_at: str  # ISO 8601, UTC

    @classmethod
    def of(cls, owner: str, started: float) -> Identity:
        """``owner`` is ``host:pid:suffix`` (the daemon's lease owner); ``started`` a wall time."""
        parts = owner.rsplit(":", 2)
        return cls(
            id=parts[-1],
            owner=owner,
            host=parts[0] if len(parts) == 3 else socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            started_at=datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        )


def _nothing() -> Mapping[str, Any]:
    return {}


def _no_jobs() -> Sequence[str]:
    return ()


def _no_exits() -> Sequence[Mapping[str, Any]]:
    return ()


class FleetRegistry(Service):
    """This daemon's entry in the fleet, renewed while it runs; ``async with`` or a supervised child.

    What the entry says comes from callables the daemon sets once its parts exist: ``jobs_held``
    (the job ids this daemon runs), ``breakers`` (name to state) and ``quota`` (the shared quotas'
    share and use of this daemon; empty until something fills it).
    """

    name = "fleet"
    stop_timeout = _DEREGISTER_TIMEOUT + 1.0

    def __init__(
        self,
        redis: aioredis.Redis | None,
        prefix: str,
        identity: Identity,
        *,
        ttl: float = 15.0,
        reconnect_max_delay: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"fleet: ttl must be positive (got {ttl})")
        super().__init__()
        self.identity = identity
        self.ttl = ttl
        self.interval = ttl / 3
        self.key = fleet_key(prefix, identity.id)
        self.jobs_held: Callable[[], Sequence[str]] = _no_jobs
        self.breakers: Callable[[], Mapping[str, str]] = _nothing
        self.quota: Callable[[], Mapping[str, Any]] = _nothing
        # The Maps egress pool's exits (docs/egress-pool.md): name, state, counts; never a URL.
        self.egress: Callable[[], Sequence[Mapping[str, Any]]] = _no_exits
        self.heartbeats = 0
        self._redis = redis
        self._prefix = prefix
        self._clock = clock or MonotonicClock()
        # Never back off longer than a heartbeat: an entry not renewed within its TTL is dropped.
        self._link = Reconnect("fleet", clock=self._clock, max_delay=min(reconnect_max_delay, self.interval))
        self._alive = 1
        self._registered = False

    @property
    def connected(self) -> bool:
        return self._redis is None or self._link.connected

    def last_seen_alive(self) -> int:
        """Daemons alive at the last heartbeat that could read the fleet, this one included (at least 1).
        Keeps its value while Redis is unreachable."""
        return self._alive

    def record(self) -> dict[str, Any]:
        """This daemon's entry as it stands now."""
        ident = self.identity
        jobs = sorted(_safely(self.jobs_held, (), "jobs_held"))
        return {
            "id": ident.id,
            "owner": ident.owner,
            "host": ident.host,
            "pid": ident.pid,
            "version": ident.version,
            "started_at": ident.started_at,
            "seen_at": datetime.fromtimestamp(self._clock.wall(), UTC).isoformat(timespec="seconds"),
            "jobs_held": len(jobs),
            "jobs": jobs,
            "breakers": dict(_safely(self.breakers, {}, "breakers")),
            "quota": dict(_safely(self.quota, {}, "quota")),
            "egress": [dict(e) for e in _safely(self.egress, (), "egress")],
        }

    async def members(self) -> list[dict[str, Any]]:
        """Every live daemon sharing this Redis (this one alone without Redis)."""
        if self._redis is None:
            return [self.record()]
        try:
            async with asyncio.timeout(self.interval):
                return await read_members(self._redis, self._prefix)
        except _UNREACHABLE as exc:
            reason = f"the fleet cannot be read: Redis is unreachable ({type(exc).__name__})"
            raise FleetUnavailable(reason) from None

    async def run(self, started: Callable[[], None]) -> None:
        if self._redis is None:
            started()
            await self._stop_requested.wait()
            return
        announced = False
        while self._running():
            try:
                # A beat that hangs (a blackholed Redis) must not outlast the next one.
                async with asyncio.timeout(self.interval):
                    await self._beat(self._redis)
            except _UNREACHABLE as exc:
                if not announced:
                    announced = True
                    started()  # Redis down is a state, not a failure to start
                await unless_set(self._stop_requested, self._link.down(exc))
                continue
            self._link.up()
            if not announced:
                announced = True
                started()
            await unless_set(self._stop_requested, self._clock.sleep(self.interval))
        # Reached on a graceful stop only: a cancelled (or killed) daemon's entry lapses by itself.
        await self._deregister(self._redis)

    async def _beat(self, redis: aioredis.Redis) -> None:
        # The entry is redacted whole: no configured secret reaches Redis through what a provider says.
        payload = redact(orjson.dumps(self.record(), default=str).decode())
        await redis.set(self.key, payload, px=max(1, int(self.ttl * 1000)))
        self._registered = True
        self.heartbeats += 1
        members = await read_members(redis, self._prefix)
        ids = {m.get("id") for m in members}
        self._alive = len(ids | {self.identity.id})

    async def _deregister(self, redis: aioredis.Redis) -> None:
        if not self._registered:
            return
        try:
            async with asyncio.timeout(_DEREGISTER_TIMEOUT):
                await redis.delete(self.key)
            self._registered = False
            log.info("left the fleet", extra={"instance": self.identity.id})
        except _UNREACHABLE as exc:
            log.warning(
                "could not leave the fleet; the entry lapses within its TTL",
                extra={"instance": self.identity.id, "ttl_s": self.ttl, "error": redact(type(exc).__name__)},
            )


def _safely(provider: Callable[[], Any], default: Any, what: str) -> Any:
    """A provider that fails costs its own field, never the heartbeat (a missed beat drops the daemon)."""
    try:
        return provider()
    except Exception as exc:
        log.warning("fleet entry field unavailable", extra={"field": what, "error": redact(repr(exc))})
        return default
