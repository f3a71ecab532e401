"""The fault matrix: faults nobody scripted, on every dependency, for short and long spells.

Each cell runs a real ``leadlawk run`` in a chaos rig (``tests.chaos_harness``: real PostgreSQL,
Redis and Chromium, both replicas, a fault proxy in front of each), starts a live job, puts one
fault on one dependency for a while, takes it away, and checks what a user would: the job ended
``succeeded`` with its exact answer set stored once, no accepted submission was lost, and no dead
letter was earned (an outage is nobody's failure). While a long fault lasts, the job must still be
running (a dependency that is down pauses a job; it never fails it), and, where the daemon can
still say so, its progress names what it waits on.

Faults: ``refused`` (nothing listens), ``reset`` (connections reset, mid-response included),
``blackhole`` (accepted, never answered), ``5xx``/``429`` (the service answers, with errors),
``slow`` (every chunk delayed), and ``dns`` (the host name does not resolve: the daemon is started
pointing at an unresolvable host, then restarted with the right one, as an operator fixes it).
Durations: shorter than the breakers' reset timeout (2 s in the rig), and four resets long.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from tests.chaos_harness import PACE_FAULTS, ChaosRig, JobExpectation, chaos_rig
from tests.waiting import poll

__all__ = ["CELLS", "QUICK_CELLS", "Cell", "run_cell"]

Dependency = Literal["maps", "pagespeed", "postgres", "redis"]
Fault = Literal["refused", "reset", "blackhole", "5xx", "429", "slow", "dns"]

SHORT = 1.0  # under the rig's breaker reset timeout (2 s)
LONG = 8.0  # four reset timeouts

FAULTS: dict[Dependency, tuple[Fault, ...]] = {
    "maps": ("refused", "reset", "blackhole", "5xx", "slow"),
    "pagespeed": ("refused", "reset", "blackhole", "5xx", "429", "slow"),
    "postgres": ("refused", "reset", "blackhole", "slow"),
    "redis": ("refused", "reset", "blackhole", "slow"),
}
# What a dependency's breaker (or readiness check) is called in the daemon's progress.
WAITING_NAME: dict[Dependency, str] = {"maps": "google_maps", "pagespeed": "pagespeed", "postgres": "database"}


@dataclass(frozen=True, slots=True)
class Cell:
    dependency: Dependency
    fault: Fault
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.dependency}-{self.fault}-{'long' if self.seconds >= LONG else 'short'}"


CELLS: tuple[Cell, ...] = (
    *(Cell(dep, fault, seconds) for dep, faults in FAULTS.items() for fault in faults for seconds in (SHORT, LONG)),
    Cell("maps", "dns", LONG),
    Cell("pagespeed", "dns", LONG),
)
# The cells `make check` runs: one of each fault kind, long, across the four dependencies.
QUICK_CELLS: tuple[Cell, ...] = (
    Cell("maps", "refused", LONG),
    Cell("maps", "dns", LONG),
    Cell("pagespeed", "5xx", LONG),
    Cell("pagespeed", "blackhole", LONG),
    Cell("postgres", "reset", LONG),
    Cell("redis", "refused", LONG),
)

# PageSpeed slowed down too, so that enrichment is still under way when its fault lands.
PAGESPEED_PACE: dict[str, Any] = {"latency_ms": {"min": 150, "max": 450}}


@dataclass
class CellResult:
    cell: Cell
    problems: list[str]
    waited_on: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


async def _apply(rig: ChaosRig, cell: Cell) -> Callable[[], Awaitable[None]]:
    """Put the cell's fault on; return what takes it away."""
    dep, fault = cell.dependency, cell.fault
    if fault in ("5xx", "429"):
        which = "maps" if dep == "maps" else "pagespeed"
        pace = {**PACE_FAULTS[which], **(PAGESPEED_PACE if which == "pagespeed" else {})}
        injected = {"server_error": True} if fault == "5xx" else {"quota_per_window": 1, "window_s": 3600}
        await rig.replica_faults(which, {**pace, **injected})

        async def heal_replica() -> None:
            await rig.replica_faults(which, pace)

        return heal_replica
    proxy = rig.proxies[dep]
    if fault == "refused":
        await proxy.refuse()
        return proxy.reopen
    if fault == "reset":
        proxy.cut()
    elif fault == "blackhole":
        proxy.blackhole()
    elif fault == "slow":
        proxy.delay(1.5)
    else:
        raise ValueError(f"no such fault for {dep}: {fault}")

    async def heal_proxy() -> None:
        proxy.restore()

    return heal_proxy


async def _waiting_on(rig: ChaosRig, job_id: str) -> list[str]:
    async with rig.db() as conn:
        progress = await conn.fetchval("SELECT progress FROM jobs WHERE id = $1", job_id)
    if isinstance(progress, str):
        progress = orjson.loads(progress)
    return list((progress or {}).get("waiting_on") or [])


async def _during(rig: ChaosRig, cell: Cell, job_id: str, problems: list[str]) -> list[str]:
    """Hold the fault for its time; the job must not fail meanwhile. What it said it waited on."""
    seen: set[str] = set()
    deadline = time.monotonic() + cell.seconds
    while time.monotonic() < deadline:
        if cell.dependency != "postgres":
            rows = await rig.job_rows([job_id])
            row = rows.get(job_id)
            if row is not None and row["status"] == "failed":
                problems.append(f"job failed during the outage: {row['error']}")
                return sorted(seen)
            seen.update(await _waiting_on(rig, job_id))
        await asyncio.sleep(0.2)
    return sorted(seen)


async def _pace(rig: ChaosRig) -> None:
    await rig.pace()
    await rig.replica_faults("pagespeed", PAGESPEED_PACE)


async def run_cell(cell: Cell, tmp: Path, **rig_options: Any) -> CellResult:
    began = time.monotonic()
    problems: list[str] = []
    env: dict[str, str] = {}
    if cell.fault == "dns":
        key = "LEADLAWK__MAPS__BASE_URL" if cell.dependency == "maps" else "LEADLAWK__PAGESPEED__BASE_URL"
        env[key] = "http://leadlawk-replica.invalid"  # .invalid never resolves (RFC 6761)
    async with chaos_rig(tmp, env=env, **rig_options) as rig:
        await _pace(rig)
        job = JobExpectation(f"cell-{cell.name}", "plumbers", "Omaha, NE")
        await rig.submit_http(job)
        if cell.fault == "dns":
            waited = await _dns(rig, cell, job, problems)
        else:
            await rig.wait_running(job.job_id, 3)
            heal = await _apply(rig, cell)
            try:
                if cell.dependency == "redis":
                    # Submitted while Redis is out of the daemon's reach: accepted by Redis, run later.
                    late = JobExpectation(f"cell-{cell.name}-late", "roofers", "Omaha, NE")
                    await rig.submit_stream(late)
                waited = await _during(rig, cell, job.job_id, problems)
            finally:
                await heal()
        await rig.wait_finished(150)
        invariants = await rig.check(expected_dead_letters=0)
        problems.extend(invariants.problems)
        if cell.seconds >= LONG and cell.dependency in ("maps", "pagespeed") and cell.fault not in ("slow", "429"):
            name = WAITING_NAME[cell.dependency]
            if name not in waited and not problems:
                # A long outage of a dependency the job still needed is reported as a wait.
                rows = await rig.job_rows([job.job_id])
                if rows[job.job_id]["status"] != "succeeded":
                    problems.append(f"the job never said it waited on {name}")
    return CellResult(cell, problems, waited, time.monotonic() - began)


async def _dns(rig: ChaosRig, cell: Cell, job: JobExpectation, problems: list[str]) -> list[str]:
    """The host does not resolve: the job waits (never fails); fixed and restarted, it completes."""
    name = WAITING_NAME[cell.dependency]
    waited: list[str] = []

    async def settled() -> str | None:
        nonlocal waited
        row = (await rig.job_rows([job.job_id])).get(job.job_id)
        if row is not None and row["status"] == "failed":
            problems.append(f"job failed on an unresolvable host: {row['error']}")
            return "failed"
        waited = await _waiting_on(rig, job.job_id)
        return "waiting" if name in waited else None

    outcome = await poll(settled, 60, every=0.2)
    if outcome == "failed":
        return waited
    if outcome is None:
        problems.append(f"the job never said it waited on {name}: {waited}")
    await asyncio.sleep(cell.seconds)  # several breaker resets: still waiting, still not failed
    row = (await rig.job_rows([job.job_id]))[job.job_id]
    if row["status"] != "running":
        problems.append(f"after {cell.seconds:g}s on an unresolvable host the job is {row['status']}: {row['error']}")
    # The operator fixes the name (here: the configuration) and restarts the daemon gracefully.
    rig.daemon.signal(signal.SIGTERM)
    code = await rig.daemon.wait_exit(30)
    rig.stop_daemon()  # nothing is left to kill; this closes its log
    if code != 0:
        problems.append(f"the daemon exited {code} at SIGTERM")
    key = "LEADLAWK__MAPS__BASE_URL" if cell.dependency == "maps" else "LEADLAWK__PAGESPEED__BASE_URL"
    proxy = rig.proxies["maps" if cell.dependency == "maps" else "pagespeed"]
    rig.env[key] = f"http://127.0.0.1:{proxy.port}"
    await rig.start_daemon()
    return waited
