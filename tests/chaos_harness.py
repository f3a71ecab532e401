"""The chaos rig: a real ``leadlawk run`` behind fault proxies, and the invariants checked after a fault.

One rig per scenario:

    test process                                  daemon subprocess
    ├── Maps replica ◄──── FaultProxy ◄────────── Chromium (maps.base_url)
    ├── PageSpeed stand-in ◄── FaultProxy ◄────── enricher (pagespeed.base_url)
    ├── FaultProxy ──► PostgreSQL (own database)◄ DATABASE_URL
    └── FaultProxy ──► Redis (own key prefix) ◄── REDIS_URL

The test reads the truth around the proxies: PostgreSQL and Redis directly, the replicas' answer
sets directly, so a fault on the daemon's side never blinds the checker. The daemon is configured
so that recovery is measurable in seconds (probes every 500 ms with thresholds 1/1, breakers that
try again after 2 s, leases of 3 s renewed every second); the figures measured are the daemon's
reaction, not the defaults' patience.

Recovery is timed from the end of a fault (the proxy restored, the crash injected, the restart
begun, the breaker's half-open trial once Google's block is over) to ``/health/ready`` answering
200, and to progress: the jobs' persisted counters or lead rows moving again, or every job finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import redis.asyncio as aioredis

from leadlawk_daemon.chaos.proxy import FaultProxy
from leadlawk_daemon.maps import proctree
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica
from leadlawk_daemon.resilience.breaker import BreakerState
from tests.daemon_process import DaemonProcess
from tests.databases import throwaway_database
from tests.waiting import eventually, poll

__all__ = [
    "FEED",
    "ChaosRig",
    "Invariants",
    "JobExpectation",
    "ScenarioResult",
    "chaos_rig",
]

FEED = 40  # businesses per answer set: a job long enough to hit mid-way, short enough for 2 cores
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "partial"})
PG_ADMIN_DSN = os.environ.get("LEADLAWK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LEADLAWK_TEST_REDIS", "redis://127.0.0.1:6379/0")

# The daemon's configuration for chaos: every timer that bounds recovery is short.
CHAOS_ENV: dict[str, str] = {
    "LEADLAWK__CHAOS__ENABLED": "true",
    "LEADLAWK__SERVER__HOST": "127.0.0.1",
    "LEADLAWK__SHUTDOWN__BUDGET": "10s",
    # Readiness follows a dependency within one probe either way.
    "LEADLAWK__RESILIENCE__HEALTH_CHECK__INTERVAL": "500ms",
    "LEADLAWK__RESILIENCE__HEALTH_CHECK__TIMEOUT": "1s",
    "LEADLAWK__RESILIENCE__HEALTH_CHECK__FAILURE_THRESHOLD": "1",
    "LEADLAWK__RESILIENCE__HEALTH_CHECK__SUCCESS_THRESHOLD": "1",
    # A breaker tries again 2 s after it opened; three failures in a row open it.
    "LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__FAILURE_THRESHOLD": "3",
    "LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__RESET_TIMEOUT": "2s",
    "LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__TIMEOUT": "10s",
    "LEADLAWK__RESILIENCE__RETRY__BASE_DELAY": "100ms",
    "LEADLAWK__RESILIENCE__RETRY__MAX_DELAY": "1s",
    "LEADLAWK__RESILIENCE__RETRY__MAX_ATTEMPTS": "8",
    # A dead daemon's job is taken over 3 s after its last renewal.
    "LEADLAWK__JOBS__LEASE_TTL": "3s",
    "LEADLAWK__JOBS__HEARTBEAT": "1s",
    "LEADLAWK__JOBS__PROGRESS_INTERVAL": "500ms",
    "LEADLAWK__REDIS__RECONNECT_MAX_DELAY": "1s",
    "LEADLAWK__REDIS__CLAIM_IDLE": "3s",
    "LEADLAWK__DATABASE__CONNECT_TIMEOUT": "1s",
    "LEADLAWK__DATABASE__COMMAND_TIMEOUT": "2s",  # under jobs.lease_ttl, as the settings require
    "LEADLAWK__SUPERVISION__BACKOFF__MIN": "10ms",
    "LEADLAWK__SUPERVISION__BACKOFF__MAX": "500ms",
    "LEADLAWK__SUPERVISION__MAX_RESTARTS": "50",
    # The replicas are on loopback: no politeness pacing, short navigation bounds.
    "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "60000",
    "LEADLAWK__MAPS__NAVIGATION_TIMEOUT": "5",
    "LEADLAWK__MAPS__SCROLL_TIMEOUT": "3",
    "LEADLAWK__MAPS__MAX_IDLE_SCROLLS": "2",
    "LEADLAWK__PAGESPEED__MAX_IN_FLIGHT": "4",
    "LEADLAWK__PAGESPEED__REQUEST_TIMEOUT": "5",
    "LEADLAWK__BROWSER__PAGES": "1",
    "LEADLAWK__BROWSER__LAUNCH_TIMEOUT": "20s",
}

# The pace of a job under test: slow enough that a fault lands while it runs (about 10-15 s for
# 40 businesses), fast enough to keep a scenario well under a minute.
PACE_FAULTS: dict[str, dict[str, Any]] = {
    "maps": {"slow_ms": 400},
    "pagespeed": {},
}


@dataclass(frozen=True, slots=True)
class JobExpectation:
    job_id: str
    query: str
    location: str
    limit: int = FEED
    status: str = "succeeded"

    def spec(self, **fields: Any) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "query": self.query,
            "location": self.location,
            "limit": self.limit,
            "pagespeed": {"enabled": True, "strategies": ["mobile"], "max_score": 60},
            "max_runtime_s": 600,
            **fields,
        }


@dataclass(slots=True)
class Invariants:
    """What the checker found; ``problems`` empty means every invariant held."""

    lost: int = 0  # businesses of an answer set missing from leads/job_leads, plus accepted jobs missing
    duplicates: int = 0  # rows beyond one per business, ranks given twice, counters past the answer set
    dead_letters: int = 0
    problems: list[str] = field(default_factory=list)

    def merge(self, other: Invariants) -> None:
        self.lost += other.lost
        self.duplicates += other.duplicates
        self.problems.extend(other.problems)


@dataclass(slots=True)
class ScenarioResult:
    name: str
    fault: str
    lost: int
    duplicates: int
    ready_s: float | None  # end of fault to /health/ready 200
    progress_s: float | None  # end of fault to progress (counters moving, or all jobs finished)
    bound_s: float  # the target both times are held to
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        times = [t for t in (self.ready_s, self.progress_s) if t is not None]
        return not self.problems and self.lost == 0 and self.duplicates == 0 and all(t < self.bound_s for t in times)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fault": self.fault,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "ready_s": None if self.ready_s is None else round(self.ready_s, 3),
            "progress_s": None if self.progress_s is None else round(self.progress_s, 3),
            "bound_s": self.bound_s,
            "ok": self.ok,
            "problems": self.problems,
            **self.extra,
        }


class ChaosRig:
    """The replicas, the four proxies, one scenario database, and the daemon wired through them."""

    def __init__(
        self,
        tmp: Path,
        database_dsn: str,
        redis_prefix: str,
        maps_url: str,
        pagespeed_url: str,
        proxies: Mapping[str, FaultProxy],
        session: aiohttp.ClientSession,
        redis: aioredis.Redis,
        env: Mapping[str, str],
    ) -> None:
        self.tmp = tmp
        self.database_dsn = database_dsn  # direct: the checker reads around the proxy
        self.redis_prefix = redis_prefix
        self.maps_url = maps_url
        self.pagespeed_url = pagespeed_url
        self.proxies = dict(proxies)
        self.session = session
        self.redis = redis
        self.env = dict(env)
        self.daemon = DaemonProcess(tmp, env=self.env, name="chaos")
        self.generation = 0
        self.jobs: dict[str, JobExpectation] = {}
        self._answers: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # -- the daemon ----------------------------------------------------------------------------

    async def start_daemon(self, within: float = 30.0) -> float:
        """Start (or restart) the daemon on the same port; seconds until it was ready."""
        if self.generation:
            self.daemon = DaemonProcess(self.tmp, env=self.env, name=f"chaos{self.generation}")
        self.generation += 1
        began = time.monotonic()
        self.daemon.start()
        await self.daemon.wait_status("/health/ready", 200, within=within)
        return time.monotonic() - began

    def stop_daemon(self) -> None:
        """Kill the daemon and whatever it left: its Chromium (stopped or not) and its process group."""
        proc = self.daemon.proc
        leftovers = self.browser_pids() if proc is not None and proc.poll() is None else []
        self.daemon.kill()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    # -- replicas --------------------------------------------------------------------------------

    async def replica_faults(self, which: str, faults: Mapping[str, Any]) -> None:
        base = self.maps_url if which == "maps" else self.pagespeed_url
        async with self.session.post(f"{base}/_faults", json=dict(faults)) as resp:
            if resp.status != 200:
                raise AssertionError(f"{which} replica refused faults {faults}: {await resp.text()}")

    async def pace(self) -> None:
        for which, faults in PACE_FAULTS.items():
            await self.replica_faults(which, faults)

    async def answers(self, query: str, location: str) -> list[dict[str, Any]]:
        key = (query, location)
        if key not in self._answers:
            async with self.session.get(f"{self.maps_url}/_answers", params={"q": query, "location": location}) as r:
                r.raise_for_status()
                body: dict[str, Any] = await r.json()
            self._answers[key] = body["answers"]
        return self._answers[key]

    # -- submissions -----------------------------------------------------------------------------

    async def submit_http(self, job: JobExpectation) -> None:
        code, body = await self.daemon.post("/jobs", job.spec())
        if code != 202:
            raise AssertionError(f"POST /jobs {job.job_id}: {code} {body}")
        self.jobs[job.job_id] = job

    async def submit_stream(self, job: JobExpectation) -> None:
        """Over the durable stream, written straight to Redis (the daemon's proxy may be cut)."""
        await self.redis.xadd(f"{self.redis_prefix}:jobs:stream", {"job": orjson.dumps(job.spec())})
        self.jobs[job.job_id] = job

    # -- observation, around the proxies ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.database_dsn)
        try:
            yield conn
        finally:
            await conn.close()

    async def job_rows(self, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        wanted = list(self.jobs if ids is None else ids)
        async with self.db() as conn:
            try:
                rows = await conn.fetch(
                    "SELECT id, status, found, written, enriched, qualified, failed, error, attempts,"
                    " (SELECT count(*) FROM job_leads jl WHERE jl.job_id = j.id) AS lead_rows"
                    " FROM jobs j WHERE id = ANY($1::text[])",
                    wanted,
                )
            except asyncpg.UndefinedTableError:
                return {}  # not migrated yet
        return {r["id"]: dict(r) for r in rows}

    async def progress_token(self, scrape_only: bool = False) -> int:
        """A number that grows whenever the jobs move: persisted counters, lead rows, terminal jobs.

        ``scrape_only`` counts lead rows and finished jobs alone: those move only when the
        browser does, while enrichment in flight moves the other counters whatever the browser's fate.
        """
        rows = await self.job_rows()
        return sum(
            (0 if scrape_only else r["found"] + r["written"] + r["enriched"])
            + r["lead_rows"] + (1000 if r["status"] in TERMINAL else 0)
            for r in rows.values()
        )

    async def wait_running(self, job_id: str, min_written: int = 1, within: float = 60.0) -> dict[str, Any]:
        """Wait until ``job_id`` runs and has written ``min_written`` rows; its row."""
        row: dict[str, Any] | None = None

        async def running() -> dict[str, Any] | None:
            nonlocal row
            row = (await self.job_rows([job_id])).get(job_id)
            if row is not None and row["status"] in TERMINAL:
                raise AssertionError(f"job {job_id} ended ({row['status']}) before the fault could be injected")
            return row if row is not None and row["status"] == "running" and row["lead_rows"] >= min_written else None

        return await eventually(running, within, lambda: f"job {job_id} running with {min_written} rows ({row})"
                                f"\n{self.daemon.log_text()[-3000:]}", every=PAUSE)

    async def wait_progress(
        self, since: float, token: int, within: float, scrape_only: bool = False
    ) -> float | None:
        """Seconds from ``since`` until the progress token passes ``token`` (or every job ended)."""
        async def progressed() -> bool:
            rows = await _try(self.job_rows())
            if rows is None:
                return False
            if rows and all(r["status"] in TERMINAL for r in rows.values()) and len(rows) == len(self.jobs):
                return True
            now = await _try(self.progress_token(scrape_only))
            return now is not None and bool(now > token)

        return time.monotonic() - since if await poll(progressed, within, every=PAUSE) else None

    async def wait_ready(self, since: float, within: float) -> float | None:
        """Seconds from ``since`` until ``/health/ready`` answers 200; None if it never did."""
        return time.monotonic() - since if await poll(self._ready_answers(200), within, every=PAUSE) else None

    async def wait_not_ready(self, within: float) -> bool:
        return bool(await poll(self._ready_answers(503), within, every=PAUSE))

    def _ready_answers(self, status: int) -> Callable[[], Awaitable[bool]]:
        """A probe: does ``/health/ready`` answer ``status`` now (a daemon not listening does not)."""

        async def answers() -> bool:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                code, _ = await self.daemon.get("/health/ready", timeout=1.0)
                return bool(code == status)
            return False

        return answers

    async def wait_finished(self, within: float = 90.0) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}

        async def finished() -> dict[str, dict[str, Any]] | None:
            nonlocal rows
            rows = await self.job_rows()
            return rows if len(rows) == len(self.jobs) and all(r["status"] in TERMINAL for r in rows.values()) else None

        return await eventually(finished, within, lambda: f"jobs finished ({rows})\n{self.daemon.log_text()[-4000:]}",
                                every=0.1)

    async def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value}."""
        code, text = await self.daemon.get("/metrics")
        if code != 200 or not isinstance(text, str):
            raise AssertionError(f"/metrics answered {code}")
        return parse_metrics(text)

    async def metric(self, key: str) -> float:
        return (await self.metrics()).get(key, 0.0)

    def browser_pids(self) -> list[int]:
        """The daemon's Chromium processes: by the private --user-data-dir, under the daemon's pid."""
        if self.daemon.proc is None:
            return []
        procs = proctree.snapshot()
        mine = descendants(self.daemon.proc.pid, procs)
        dirs = {m.group(1) for pid in mine if (m := _USER_DATA_DIR.search(procs[pid].cmdline))}
        found: set[int] = set()
        for user_data_dir in dirs:
            found |= {p.pid for p in proctree.browser_processes(user_data_dir, procs)}
        return sorted(found)

    def signal_browser(self, sig: signal.Signals) -> list[int]:
        pids = self.browser_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids

    # -- the invariants --------------------------------------------------------------------------

    async def check(self, expected_dead_letters: int | None = 0) -> Invariants:
        """Every invariant, read from PostgreSQL: see the module's docstring."""
        found = Invariants()
        rows = await self.job_rows()
        async with self.db() as conn:
            for job_id, job in self.jobs.items():
                row = rows.get(job_id)
                if row is None:
                    found.lost += 1
                    found.problems.append(f"accepted job {job_id} is not in the jobs table")
                    continue
                if row["status"] != job.status:
                    found.problems.append(f"job {job_id} ended {row['status']} (expected {job.status}): {row['error']}")
                answers = (await self.answers(job.query, job.location))[: job.limit]
                expected = [a["place_id"] for a in answers]
                links = await conn.fetch("SELECT place_id, rank FROM job_leads WHERE job_id = $1", job_id)
                linked = [r["place_id"] for r in links]
                ranks = [r["rank"] for r in links]
                stored = {
                    r["place_id"]
                    for r in await conn.fetch("SELECT place_id FROM leads WHERE place_id = ANY($1::text[])", expected)
                }
                missing = (set(expected) - set(linked)) | (set(expected) - stored)
                extra = len(linked) - len(set(linked) & set(expected))
                twice = len(ranks) - len(set(ranks))
                over = max(0, row["written"] - len(expected)) + max(0, row["found"] - len(expected))
                found.lost += len(missing)
                found.duplicates += extra + twice + over
                if missing:
                    found.problems.append(f"job {job_id}: {len(missing)} of {len(expected)} businesses missing")
                if extra or twice or over:
                    found.problems.append(
                        f"job {job_id}: {extra} rows outside the answer set, {twice} ranks given twice, "
                        f"counters found={row['found']} written={row['written']} for {len(expected)}"
                    )
                if job.status == "succeeded" and (row["found"], row["written"]) != (len(expected), len(expected)):
                    found.problems.append(
                        f"job {job_id}: counters found={row['found']} written={row['written']}, "
                        f"expected {len(expected)}"
                    )
                untested = await conn.fetchval(
                    "SELECT count(*) FROM job_leads jl JOIN leads l USING (place_id)"
                    " LEFT JOIN pagespeed_results p ON p.place_id = l.place_id AND p.strategy = 'mobile'"
                    " WHERE jl.job_id = $1 AND l.website IS NOT NULL AND p.tested_at IS NULL",
                    job_id,
                )
                if job.status == "succeeded" and untested:
                    found.problems.append(f"job {job_id}: {untested} leads with a website never got a PageSpeed result")
            letters = await conn.fetch("SELECT kind, reason, attempts FROM dead_letters")
        found.dead_letters = len(letters)
        if expected_dead_letters is not None and len(letters) != expected_dead_letters:
            found.problems.append(
                f"{len(letters)} dead letters, expected {expected_dead_letters}: "
                + "; ".join(f"{r['kind']}: {r['reason'][:120]}" for r in letters[:5])
            )
        return found


_USER_DATA_DIR = re.compile(r"--user-data-dir=(\S*leadlawk-chromium-\S*)")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match:
            with contextlib.suppress(ValueError):
                out[match.group(1)] = float(match.group(2))
    return out


def descendants(root: int, procs: Mapping[int, proctree.ProcessInfo]) -> set[int]:
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    out: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


# How often a scenario polls the daemon (its HTTP API, its log, its database) while it waits.
PAUSE = 0.05


async def _try(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (OSError, asyncpg.PostgresError):
        return None


def scenario_database(admin_dsn: str) -> contextlib.AbstractAsyncContextManager[str]:
    """A database of the scenario's own on the shared server; dropped (forcibly) at the end."""
    return throwaway_database(admin_dsn, "chaos")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or default_port)


def _via(url: str, port: int) -> str:
    scheme, rest = url.split("://", 1)
    authority, slash, path = rest.partition("/")
    user, at, _ = authority.rpartition("@")
    return f"{scheme}://{user}{at}127.0.0.1:{port}{slash}{path}"


@contextlib.asynccontextmanager
async def chaos_rig(
    tmp: Path,
    *,
    admin_dsn: str = PG_ADMIN_DSN,
    redis_prefix: str | None = None,
    redis_url: str = REDIS_URL,
    env: Mapping[str, str] | None = None,
    seed: int = 11,
    start: bool = True,
) -> AsyncIterator[ChaosRig]:
    """Everything a scenario needs; the daemon started and ready unless ``start=False``."""
    prefix = redis_prefix or f"llchaos-{uuid.uuid4().hex[:12]}"
    pg_host, pg_port = _host_port(admin_dsn, 5432)
    redis_host, redis_port = _host_port(redis_url, 6379)
    async with (
        scenario_database(admin_dsn) as database,
        serve_maps_replica("127.0.0.1", 0, seed=seed, max_results=FEED) as maps_url,
        serve_pagespeed_replica("127.0.0.1", 0, seed=3) as psi_url,
        FaultProxy("127.0.0.1", 0, pg_host, pg_port) as pg_proxy,
        FaultProxy("127.0.0.1", 0, redis_host, redis_port) as redis_proxy,
        FaultProxy("127.0.0.1", 0, *_host_port(maps_url, 80)) as maps_proxy,
        FaultProxy("127.0.0.1", 0, *_host_port(psi_url, 80)) as psi_proxy,
        aiohttp.ClientSession() as session,
    ):
        redis = aioredis.Redis.from_url(redis_url)
        daemon_env = {
            **CHAOS_ENV,
            "DATABASE_URL": _via(database, pg_proxy.port),
            "REDIS_URL": _via(redis_url, redis_proxy.port),
            "LEADLAWK__REDIS__PREFIX": prefix,
            "LEADLAWK__MAPS__BASE_URL": f"http://127.0.0.1:{maps_proxy.port}",
            "LEADLAWK__PAGESPEED__BASE_URL": f"http://127.0.0.1:{psi_proxy.port}",
            **(env or {}),
        }
        proxies = {"postgres": pg_proxy, "redis": redis_proxy, "maps": maps_proxy, "pagespeed": psi_proxy}
        rig = ChaosRig(tmp, database, prefix, maps_url, psi_url, proxies, session, redis, daemon_env)
        try:
            if start:
                await rig.start_daemon()
            yield rig
        finally:
            rig.stop_daemon()
            keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


# -- the scenarios ---------------------------------------------------------------------------------
#
# Each runs in a rig of its own (``run_scenario``), during a live job, and returns what it measured;
# the tests assert on the result, bench/chaos.py prints it.

DEPENDENCY_BOUND = 10.0  # ready and progressing again within 10 s of a dependency's return
CRASH_BOUND = 1.0  # an actor back within 1 s of its crash
RESTART_BOUND = 10.0  # a restarted daemon ready and resuming within 10 s


async def _live_job(rig: ChaosRig, *, pace: bool = True, min_rows: int = 3, job_id: str = "live") -> JobExpectation:
    if pace:
        await rig.pace()
    job = JobExpectation(job_id, "plumbers", "Omaha, NE")
    await rig.submit_http(job)
    await rig.wait_running(job.job_id, min_rows)
    return job


async def _recovery(
    rig: ChaosRig, fault_end: float, token: int, bound: float, *, scrape_only: bool = False
) -> tuple[float | None, float | None]:
    ready, progress = await asyncio.gather(
        rig.wait_ready(fault_end, within=bound * 3),
        rig.wait_progress(fault_end, token, within=bound * 3, scrape_only=scrape_only),
    )
    return ready, progress


async def _result(
    rig: ChaosRig,
    name: str,
    fault: str,
    ready_s: float | None,
    progress_s: float | None,
    bound: float,
    *,
    expected_dead_letters: int = 0,
    **extra: Any,
) -> ScenarioResult:
    await rig.wait_finished(120)
    invariants = await rig.check(expected_dead_letters)
    problems = list(invariants.problems)
    if ready_s is None:
        problems.append("never ready again")
    if progress_s is None:
        problems.append("never progressed again")
    return ScenarioResult(name, fault, invariants.lost, invariants.duplicates, ready_s, progress_s, bound,
                          problems, dict(extra))


async def browser_killed(rig: ChaosRig) -> ScenarioResult:
    """(a) Chromium SIGKILLed mid-scrape: the scraper fails, its supervisor relaunches the browser."""
    await _live_job(rig)
    before = await rig.metric('leadlawk_actor_restarts_total{actor="scraper"}')
    token = await rig.progress_token(scrape_only=True)
    killed = rig.signal_browser(signal.SIGKILL)
    if not killed:
        raise AssertionError("no Chromium process found under the daemon")
    fault_end = time.monotonic()
    # Rows scraped before the kill may still be on their way to the store: progress counts only
    # from the moment a new browser runs.
    relaunched = await _new_browser(rig, killed, within=DEPENDENCY_BOUND * 2)
    new_browser_s = time.monotonic() - fault_end
    token = await rig.progress_token(scrape_only=True)
    ready, progress = await _recovery(rig, fault_end, token, DEPENDENCY_BOUND, scrape_only=True)
    result = await _result(
        rig, "browser_killed", "Chromium SIGKILLed mid-scrape", ready, progress, DEPENDENCY_BOUND,
        killed=len(killed), new_browser_s=round(new_browser_s, 3),
    )
    result.extra["scraper_restarts"] = await rig.metric('leadlawk_actor_restarts_total{actor="scraper"}') - before
    if not relaunched:
        result.problems.append("no new browser was launched")
    return result


async def _new_browser(rig: ChaosRig, old: Iterable[int], within: float) -> bool:
    """Wait for a Chromium of the daemon's that is not one of ``old``."""
    old_pids = set(old)
    return bool(await poll(lambda: set(rig.browser_pids()) - old_pids, within, every=PAUSE))


async def browser_hung(rig: ChaosRig) -> ScenarioResult:
    """(a) Chromium frozen (SIGSTOP) mid-scrape: the bounded browser calls time out, the actor
    fails and the frozen process tree is killed and replaced. The fault ends when the daemon ends
    it: the frozen processes are gone; detection is held to the navigation timeout plus slack."""
    await _live_job(rig)
    token = await rig.progress_token(scrape_only=True)
    stopped = rig.signal_browser(signal.SIGSTOP)
    if not stopped:
        raise AssertionError("no Chromium process found under the daemon")
    began = time.monotonic()
    navigation_timeout = float(rig.env["LEADLAWK__MAPS__NAVIGATION_TIMEOUT"])
    detect_bound = navigation_timeout + 10.0
    try:
        await poll(lambda: not set(stopped) & set(_alive(stopped)), detect_bound * 2, every=PAUSE)
    finally:
        for pid in _alive(stopped):  # the daemon did not end the hang: end it, the test fails below
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    fault_end = time.monotonic()
    detected = fault_end - began
    ready, progress = await _recovery(rig, fault_end, token, DEPENDENCY_BOUND, scrape_only=True)
    result = await _result(
        rig, "browser_hung", "Chromium frozen (SIGSTOP) mid-scrape", ready, progress, DEPENDENCY_BOUND,
        detected_s=round(detected, 3), detect_bound_s=detect_bound,
    )
    if detected > detect_bound:
        result.problems.append(f"the frozen browser was replaced after {detected:.1f}s (bound {detect_bound:g}s)")
    return result


def _alive(pids: Iterable[int]) -> list[int]:
    procs = proctree.snapshot()
    return [pid for pid in pids if pid in procs]


async def database_outage(rig: ChaosRig, seconds: float = 4.0) -> ScenarioResult:
    """(b) PostgreSQL unreachable for a few seconds (the proxy resets every connection, and every
    backend of the scenario's database is terminated), then back."""
    await _live_job(rig)
    proxy = rig.proxies["postgres"]
    proxy.cut()
    began = time.monotonic()
    async with rig.db() as conn:
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    went_unready = await rig.wait_not_ready(seconds)
    await _sleep_until(began + seconds)
    token = await rig.progress_token()
    proxy.restore()
    fault_end = time.monotonic()
    ready, progress = await _recovery(rig, fault_end, token, DEPENDENCY_BOUND)
    result = await _result(
        rig, "database_outage", f"PostgreSQL cut for {seconds:g}s", ready, progress, DEPENDENCY_BOUND,
        backends_terminated=terminated, went_unready=went_unready,
    )
    if not went_unready:
        result.problems.append("readiness never reported the database outage")
    return result


async def memory_recycle(rig: ChaosRig) -> ScenarioResult:
    """(c) A browser past ``browser.memory_limit_mb`` (set below what Chromium needs) is recycled
    before each job's scrape; the jobs complete."""
    await rig.pace()
    jobs = [JobExpectation("mem-1", "plumbers", "Omaha, NE"), JobExpectation("mem-2", "dentists", "Omaha, NE")]
    began = time.monotonic()
    for job in jobs:
        await rig.submit_http(job)

    async def recycled() -> bool:
        return await rig.metric("leadlawk_browser_restarts_total") >= 1

    await eventually(recycled, 60 - (time.monotonic() - began),
                     lambda: f"a browser recycle\n{rig.daemon.log_text()[-3000:]}", every=PAUSE)
    fault_end = time.monotonic()
    token = await rig.progress_token(scrape_only=True)
    ready, progress = await _recovery(rig, fault_end, token, DEPENDENCY_BOUND, scrape_only=True)
    result = await _result(
        rig, "memory_recycle", f"browser over memory_limit_mb={rig.env['LEADLAWK__BROWSER__MEMORY_LIMIT_MB']}",
        ready, progress, DEPENDENCY_BOUND,
    )
    result.extra["browser_restarts"] = await rig.metric("leadlawk_browser_restarts_total")
    reasons = [e.get("reason", "") for e in rig.daemon.log_lines() if e.get("event") == "browser recycled"]
    result.extra["recycle_reasons"] = reasons[:4]
    if not any("memory" in reason for reason in reasons):
        result.problems.append(f"no recycle for memory in the log: {reasons}")
    return result


async def pagespeed_rate_limited(rig: ChaosRig) -> ScenarioResult:
    """(d) PageSpeed answers 429 (a per-window quota far below our pace) for a few seconds, then
    500s until its breaker opens; the quota lifted, the breaker half-opens and closes, every
    lead is enriched."""
    await _live_job(rig, min_rows=1)
    retries_before = await rig.metric('leadlawk_retries_total{dependency="pagespeed"}')
    await rig.replica_faults("pagespeed", {"quota_per_window": 1, "window_s": 1})
    began = time.monotonic()
    await _sleep_until(began + 3.0)
    await rig.replica_faults("pagespeed", {"server_error": True})
    opened = await _wait_metric(rig, 'leadlawk_circuit_breaker_state{breaker="pagespeed"}', 2.0, within=15.0)
    token = await rig.progress_token()
    await rig.replica_faults("pagespeed", {})
    fault_end = time.monotonic()
    ready, progress = await _recovery(rig, fault_end, token, DEPENDENCY_BOUND)
    result = await _result(
        rig, "pagespeed_rate_limited", "PageSpeed 429s for 3s, then 500s until the breaker opened",
        ready, progress, DEPENDENCY_BOUND, breaker_opened=opened,
        retries=await rig.metric('leadlawk_retries_total{dependency="pagespeed"}') - retries_before,
    )
    if not opened:
        result.problems.append("the PageSpeed breaker never opened")
    return result


async def maps_sorry(rig: ChaosRig, count: int = 8) -> ScenarioResult:
    """(d) Google Maps' /sorry/ block page on the next N visits: the Maps breaker opens, waits,
    half-opens, and the scrape resumes once the block has passed.

    Recovery is timed from the half-open trial that found Google answering again, not from the
    last /sorry/ served: when that last one was itself a trial, the breaker sits out a whole
    reset timeout before trying again, and that wait is the breaker's design, not slowness."""
    await rig.pace()
    await rig.replica_faults("maps", {**PACE_FAULTS["maps"], "sorry": count})
    job = JobExpectation("sorry", "plumbers", "Omaha, NE")
    await rig.submit_http(job)
    opened = await _wait_metric(rig, 'leadlawk_circuit_breaker_state{breaker="google_maps"}', 2.0, within=30.0)

    async def sorry_spent() -> bool:
        return not (await _active_faults(rig, "maps")).get("sorry")

    await eventually(sorry_spent, 60, "the /sorry/ fault used up", every=PAUSE)
    token = await rig.progress_token(scrape_only=True)
    used_up = time.monotonic()
    ready, progress = await _recovery(rig, used_up, token, DEPENDENCY_BOUND, scrape_only=True)
    waited = await _wait_for_trial(rig, "google_maps", since=used_up, within=DEPENDENCY_BOUND) if opened else 0.0
    ready, progress = (None if t is None else max(0.0, t - waited) for t in (ready, progress))
    result = await _result(
        rig, "maps_sorry", f"Maps /sorry/ on the next {count} visits", ready, progress, DEPENDENCY_BOUND,
        breaker_opened=opened, trial_after_s=round(waited, 3),
    )
    if not opened:
        result.problems.append("the Google Maps breaker never opened")
    return result


async def network_partition(rig: ChaosRig, seconds: float = 6.0) -> ScenarioResult:
    """(e) Redis, PostgreSQL and both stand-ins blackholed at once (connections held, nothing
    through, no reset) while a second job is submitted over the stream; then the network heals."""
    await _live_job(rig)
    for proxy in rig.proxies.values():
        proxy.blackhole()
    began = time.monotonic()
    await rig.submit_stream(JobExpectation("during-partition", "dentists", "Omaha, NE"))
    went_unready = await rig.wait_not_ready(seconds)
    await _sleep_until(began + seconds)
    token = await rig.progress_token()
    for proxy in rig.proxies.values():
        proxy.restore()
    fault_end = time.monotonic()
    ready, progress = await _recovery(rig, fault_end, token, DEPENDENCY_BOUND)
    # Whether readiness noticed is recorded, not required: the health probe's timeout waits for
    # asyncpg's connection release through the partition (see the report on health.py).
    return await _result(
        rig, "network_partition", f"Redis, PostgreSQL, Maps, PageSpeed blackholed {seconds:g}s",
        ready, progress, DEPENDENCY_BOUND, went_unready=went_unready,
    )


async def actor_crash(rig: ChaosRig) -> ScenarioResult:
    """(f) ``POST /debug/crash/writer`` then ``/debug/crash/scraper`` mid-job: each actor is back
    (restarted, and for the scraper its browser relaunched) within 1 s."""
    await _live_job(rig)
    back: dict[str, float] = {}
    ready_after: dict[str, float | None] = {}
    progress_after: float | None = None
    for actor in ("writer", "scraper"):
        crashes_before = _crashes(rig.daemon.log_lines(), actor)
        token = await rig.progress_token()
        code, body = await rig.daemon.post(f"/debug/crash/{actor}")
        if code not in (200, 202):
            raise AssertionError(f"/debug/crash/{actor}: {code} {body}")
        crashed = time.monotonic()
        # From the crash itself to the supervisor's restart, by the daemon's own log: a busy actor
        # raises only when its message in hand is done (actors/actor.py), which is not recovery time.
        restarted = await poll(_restart_probe(rig, actor, crashes_before), 30.0, every=PAUSE)
        back[actor] = float("inf") if restarted is None else restarted[0]
        ready, progress = await _recovery(rig, crashed, token, DEPENDENCY_BOUND)
        ready_after[actor] = None if ready is None else round(ready, 3)
        progress_after = progress if progress_after is None or progress is None else max(progress_after, progress)
    readies = [r for r in ready_after.values() if r is not None]
    result = await _result(
        rig, "actor_crash", "writer and scraper crashed via /debug/crash",
        max(readies) if len(readies) == len(ready_after) else None, progress_after,
        DEPENDENCY_BOUND, actor_back_s=back, ready_after_s=ready_after,
    )
    # The scraper's restart includes launching Chromium (about 1 s on 2 shared cores): it is held
    # to the dependency bound; every other actor to the crash bound.
    for actor, seconds in back.items():
        bound = DEPENDENCY_BOUND if actor == "scraper" else CRASH_BOUND
        if seconds >= bound:
            result.problems.append(f"{actor} back {seconds}s after its crash (bound {bound:g}s)")
    return result


def _crashes(lines: list[dict[str, Any]], actor: str) -> int:
    return sum(1 for line in lines if line.get("event") == "child crashed" and line.get("child") == actor)


def _restart_seconds(lines: list[dict[str, Any]], actor: str, skip: int) -> float | None:
    """Seconds from crash number ``skip + 1`` of ``actor`` to its next start, by the daemon's log;
    None until both are logged."""
    crashed: datetime | None = None
    seen = 0
    for line in lines:
        if line.get("child") != actor or line.get("supervisor") != "pipeline":
            continue
        if line.get("event") == "child crashed":
            seen += 1
            if seen == skip + 1:
                crashed = datetime.fromisoformat(str(line["ts"]))
        elif line.get("event") == "child started" and crashed is not None:
            return round((datetime.fromisoformat(str(line["ts"])) - crashed).total_seconds(), 3)
    return None


def _restart_probe(rig: ChaosRig, actor: str, skip: int) -> Callable[[], tuple[float] | None]:
    """A probe for :func:`poll`: the restart's seconds once logged, in a 1-tuple (0.0 s is an answer)."""

    def restarted() -> tuple[float] | None:
        seconds = _restart_seconds(rig.daemon.log_lines(), actor, skip)
        return None if seconds is None else (seconds,)

    return restarted


async def daemon_killed(rig: ChaosRig, sig: signal.Signals = signal.SIGKILL) -> ScenarioResult:
    """(g) The daemon SIGKILLed (or SIGTERMed) mid-job, with a second job waiting unacknowledged
    in the stream; a new daemon resumes both within 10 s."""
    job = await _live_job(rig)
    await rig.submit_stream(JobExpectation("queued-at-kill", "dentists", "Omaha, NE"))
    assert rig.daemon.proc is not None
    old_pid = rig.daemon.proc.pid
    rig.daemon.signal(sig)
    code = await rig.daemon.wait_exit(within=15.0)
    # A platform ends the whole container: whatever the daemon left behind goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(old_pid, signal.SIGKILL)
    token = await rig.progress_token()
    restart = time.monotonic()
    rig.daemon.kill()
    rig.daemon = DaemonProcess(rig.tmp, env=rig.env, name=f"chaos{rig.generation}")
    rig.generation += 1
    rig.daemon.start()
    ready, progress = await _recovery(rig, restart, token, RESTART_BOUND)
    name = "daemon_sigkill" if sig is signal.SIGKILL else "daemon_sigterm"
    result = await _result(
        rig, name, f"daemon {sig.name} mid-job, then restarted", ready, progress, RESTART_BOUND,
        exit_status=code, resumed_job=job.job_id,
    )
    if sig is signal.SIGTERM and code != 0:
        result.problems.append(f"SIGTERM exit status {code}, expected 0")
    return result


async def _wait_metric(rig: ChaosRig, key: str, value: float, *, within: float, at_least: bool = False) -> bool:
    async def reached() -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, AssertionError):
            now = await rig.metric(key)
            return now == value or (at_least and now >= value)
        return False

    return bool(await poll(reached, within, every=0.02))


async def _wait_for_trial(rig: ChaosRig, breaker: str, *, since: float, within: float) -> float:
    """Seconds from ``since`` (this process's monotonic clock) to the start of the half-open trial
    that closed ``breaker`` again; 0 if it began before. Read from the timestamps of the daemon's
    own log lines, so a checker slowed down by a loaded machine does not stretch the figure."""
    since_wall = time.time() - (time.monotonic() - since)
    changes: list[dict[str, Any]] = []

    def trial_began() -> tuple[float] | None:  # a 1-tuple: a trial at once is 0.0 s, an answer too
        nonlocal changes
        changes = [
            e for e in rig.daemon.log_lines()
            if e.get("event") == "circuit breaker changed" and e.get("breaker") == breaker
        ]
        closing = [i for i, e in enumerate(changes) if e.get("to") == BreakerState.CLOSED and i > 0]
        if closing and changes[closing[-1] - 1].get("to") == BreakerState.HALF_OPEN:
            return (datetime.fromisoformat(str(changes[closing[-1] - 1]["ts"])).timestamp(),)
        return None

    (began,) = await eventually(trial_began, within, lambda: f"the {breaker} breaker closing through a trial "
                                f"({changes[-5:]})", every=PAUSE)
    return max(0.0, began - since_wall)


async def _active_faults(rig: ChaosRig, which: str) -> dict[str, Any]:
    base = rig.maps_url if which == "maps" else rig.pagespeed_url
    async with rig.session.get(f"{base}/_faults") as resp:
        body: dict[str, Any] = await resp.json()
    active: dict[str, Any] = body.get("active", body)
    return active


async def _sleep_until(moment: float) -> None:
    """The fault's planned duration: the one place a scenario waits on the clock, by design."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    run: Any  # Callable[[ChaosRig], Awaitable[ScenarioResult]]
    env: Mapping[str, str] = field(default_factory=dict)


async def _sigterm(rig: ChaosRig) -> ScenarioResult:
    return await daemon_killed(rig, signal.SIGTERM)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("browser_killed", browser_killed),
    Scenario("browser_hung", browser_hung),
    Scenario("database_outage", database_outage),
    Scenario("memory_recycle", memory_recycle, {"LEADLAWK__BROWSER__MEMORY_LIMIT_MB": "64"}),
    Scenario("pagespeed_rate_limited", pagespeed_rate_limited),
    Scenario("maps_sorry", maps_sorry),
    Scenario("network_partition", network_partition),
    Scenario("actor_crash", actor_crash),
    Scenario("daemon_sigkill", daemon_killed),
    Scenario("daemon_sigterm", _sigterm),
)


async def run_scenario(name: str, tmp: Path, **rig_options: Any) -> ScenarioResult:
    scenario = next(s for s in SCENARIOS if s.name == name)
    env = {**scenario.env, **rig_options.pop("env", {})}
    async with chaos_rig(tmp, env=env, **rig_options) as rig:
        result: ScenarioResult = await scenario.run(rig)
        return result
