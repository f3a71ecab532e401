"""Fire lag of schedules due in the same minute, across several daemons' firing loops on one PostgreSQL.

Creates its own PostgreSQL database (dropped at the end) on the server of ``LEADLAWK_BENCH_PG``
(default ``postgresql://postgres@127.0.0.1:5432/test``), starts ``--daemons`` scheduler processes
(the daemon's firing loop with its store and admission, on the database's own clock, as
``leadlawk run`` builds it, without the pipeline), then adds ``--schedules`` schedules all due at
the same minute, at least 20 s ahead. The fire lag of each is its ``schedule_fires.fired_at``
(when its fire and job were written) minus its due time: what ``leadlawk_schedule_fire_lag_seconds``
observes. Target: p99 under 1 s for 1,000 schedules across 3 daemons (docs/schedules.md).

Usage: python bench/schedules.py [--schedules N] [--daemons D]. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.schedules.firing import FiringLimits, ScheduleFiring
from leadlawk_daemon.schedules.schedule import parse_schedule
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.sql_store import SqlStore
from tests.databases import throwaway_database

ADMIN_DSN = os.environ.get("LEADLAWK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
HERE = Path(__file__).resolve()


class _Unheard:
    def publish(self, type: str, /, **context: Any) -> None:
        pass


async def worker(url: str, owner: str) -> None:
    """One daemon's firing loop with the configuration's defaults, until SIGTERM."""
    # The configuration's defaults; LEADLAWK__SCHEDULES__* variables try others (e.g. BATCH=100).
    s = load_settings(environ={k: v for k, v in os.environ.items() if k.startswith("LEADLAWK__SCHEDULES__")}).schedules
    async with open_store(url, pool_max=8) as opened:
        assert isinstance(opened, SqlStore)
        store = opened

        def admission(jobs: JobStore) -> Admission:
            return Admission(jobs, store, _Unheard(), max_bytes=65_536, queue_size=None)

        firing = ScheduleFiring(
            lambda: store, admission, owner=owner,
            limits=FiringLimits(s.poll_interval, s.batch, s.parallel, s.claim_ttl, s.grace),
        )  # fmt: skip
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, firing.request_stop)
        print("ready", flush=True)
        await firing.run(lambda: None)
        print(f"{owner}: {firing.passes} passes", flush=True)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(schedules: int, daemons: int) -> dict[str, Any]:
    async with (
        throwaway_database(ADMIN_DSN, "leadlawk_bench_schedules") as dsn,
        open_store(dsn, migrate=True) as opened,
    ):
        assert isinstance(opened, SqlStore)
        store = opened
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(HERE), "--worker", dsn, f"daemon-{n}", stdout=asyncio.subprocess.PIPE
            )
            for n in range(daemons)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                if await asyncio.wait_for(proc.stdout.readline(), 60.0) != b"ready\n":
                    raise RuntimeError("a scheduler process did not start")
            # Added first, all due far ahead, then moved to one minute in a single statement: the
            # daemons see them due together, however long adding a thousand took.
            now = await store.database_now()
            parked = now + timedelta(days=1)
            for i in range(schedules):
                definition = parse_schedule(
                    {"id": f"b{i:05d}", "name": f"bench {i}", "spec": {"query": f"plumbers {i}"},
                     "cron": "* * * * *", "tz": "UTC"},
                    max_bytes=65_536,
                )  # fmt: skip
                await store.add_schedule(definition, parked, now)
            added = await store.database_now()
            due = (added + timedelta(seconds=80)).replace(second=0, microsecond=0)
            async with store.database.writing() as session:
                await session.execute("UPDATE schedules SET next_due_at = $1", due)
            print(f"{daemons} daemons; {schedules} schedules due at {due:%H:%M:%S}Z", flush=True)
            deadline = time.monotonic() + (due - added).total_seconds() + 120
            fired: list[float] = []
            while time.monotonic() < deadline:
                async with store.database.reading() as session:
                    rows = await session.fetch(
                        "SELECT EXTRACT(EPOCH FROM fired_at - due_at) AS lag FROM schedule_fires WHERE due_at = $1",
                        due,
                    )
                fired = [float(r["lag"]) for r in rows]
                if len(fired) >= schedules:
                    break
                await asyncio.sleep(0.5)
            jobs = await store.list_jobs(limit=schedules * 2)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                out, _ = await asyncio.wait_for(proc.communicate(), 30.0)
                print(out.decode().strip().splitlines()[-1] if out else "(no output)", flush=True)
    if len(fired) < schedules:
        raise RuntimeError(f"only {len(fired)} of {schedules} schedules fired within 2 minutes of their due time")
    return {
        "bench": "schedules",
        "schedules": schedules,
        "daemons": daemons,
        "fired": len(fired),
        "jobs": len(jobs),
        "fire_lag_p50_s": round(statistics.median(fired), 3),
        "fire_lag_p99_s": round(_quantile(fired, 0.99), 3),
        "fire_lag_max_s": round(max(fired), 3),
        "target_p99_s": 1.0,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "OWNER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        uvloop.run(worker(*args.worker))
        return
    result = uvloop.run(run(args.schedules, args.daemons))
    print(
        f"fire lag over {result['fired']} schedules across {result['daemons']} daemons: "
        f"p50 {result['fire_lag_p50_s']} s, p99 {result['fire_lag_p99_s']} s, max {result['fire_lag_max_s']} s "
        f"(target p99 < 1 s); load {result['load_average']}"
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
