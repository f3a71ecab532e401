"""Every due time fires exactly once across three daemons' firing loops on one PostgreSQL.

Three scheduler processes (this module run as a program: the daemon's firing loop, its store and
its admission, without the pipeline; a full daemon each would add a browser per process and
nothing to what is tested) fire 200 schedules over one simulated day: the schedule clock is the
database's, scaled 480 times (``ScaledTime``: a day in 3 minutes; every process reads the same
database clock, so they agree). The day is 2026-03-08, when Chicago springs forward, and the
schedules are in Chicago, Berlin and UTC. A runner in the test finishes each job soon after it
is queued, as a pipeline would.

During the day one process is SIGKILLed at 06:00 (a busy minute: most schedules are due on the
hour), and the database is cut for 22.5 real seconds (three hours of the day, past the grace of two)
across several due times.
Then, for each schedule: every cron time of the day has exactly one ``schedule_fires`` row; each
fired due time has exactly one job and each schedule job one fire; a due time is missed only as
``catch_up`` says (a later one was due too and fired in the same pass, or, with ``none``, it was
past the grace); ``catch_up: none`` fired nothing later than the grace; the outage cost both
kinds due times and ``latest`` caught up. (A busy simulated hour on a loaded machine takes
seconds of real time, an hour of the day: when a schedule is that late, ``latest`` fires only
its latest due time, which the test accepts as the rule it is, wherever in the day.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from leadlawk_daemon.chaos.proxy import FaultProxy
from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.schedules.clock import ScaledTime
from leadlawk_daemon.schedules.cron import CronRule
from leadlawk_daemon.schedules.firing import FiringLimits, ScheduleFiring
from leadlawk_daemon.schedules.schedule import parse_schedule
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.sql_store import SqlStore
from tests.daemon_process import ROOT
from tests.waiting import eventually

# Alone: a simulated day runs 480 times faster than real time, so a loaded machine's stalls are
# simulated hours; make test runs it after the parallel phase (docs/testing.md).
# A simulated day in three minutes: make chaos runs it, alone, and make check does not (mark long).
pytestmark = [pytest.mark.timeout(420), pytest.mark.alone, pytest.mark.long]

FACTOR = 480.0  # a simulated day in 180 s
ORIGIN = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # midnight in Chicago, the night it springs forward
DAY_END = ORIGIN + timedelta(days=1)
GRACE_S = 7200.0  # schedule-clock seconds: 15 real seconds, past what a loaded machine delays a busy minute
CLAIM_TTL_S = 2.0  # real seconds: a killed process's claims lapse in 16 simulated minutes, under the grace
ZONES = ("America/Chicago", "Europe/Berlin", "UTC")
SCHEDULES = 200


def cron_of(i: int) -> str:
    """Most on the hour (busy minutes), every 30 minutes, every 3 hours, once a day."""
    return ("*/30 * * * *", "0 * * * *", f"{i % 60} */3 * * *", f"0 {i % 24} * * *")[i % 4]


class _Unheard:
    def publish(self, type: str, /, **context: Any) -> None:
        pass


# -- one scheduler process ----------------------------------------------------------------------


async def _run_scheduler(url: str, owner: str) -> int:
    async with open_store(url, pool_min=1, pool_max=6, connect_timeout=2.0, command_timeout=5.0) as opened:
        assert isinstance(opened, SqlStore)
        store = opened
        # The day starts when every process is up (a loaded machine takes seconds to start one).
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        epoch = datetime.fromisoformat((await asyncio.to_thread(sys.stdin.readline)).strip())

        def admission(jobs: JobStore) -> Admission:
            return Admission(jobs, store, _Unheard(), max_bytes=65_536, queue_size=None)

        time = ScaledTime(store, origin=ORIGIN, epoch=epoch, factor=FACTOR)
        firing = ScheduleFiring(
            lambda: store, admission, owner=owner, schedule_clock=lambda _: time,
            limits=FiringLimits(poll_interval=0.5, batch=50, parallel=4, claim_ttl=CLAIM_TTL_S, grace=GRACE_S),
        )  # fmt: skip
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, firing.request_stop)
        crashes = 0
        while True:
            try:
                await firing.run(lambda: None)
                break
            except Exception as exc:  # the daemon's supervisor restarts the child; here, this loop does
                crashes += 1
                sys.stderr.write(f"{owner}: firing loop crashed ({type(exc).__name__}: {exc!r:.300}); restarting\n")
                await asyncio.sleep(0.2)
        sys.stdout.write(f"{owner} passes={firing.passes} crashes={crashes}\n")
    return 0


# -- the test ------------------------------------------------------------------------------------


async def _seed(store: SqlStore) -> dict[str, CronRule]:
    rules = {}
    for i in range(SCHEDULES):
        definition = parse_schedule(
            {"id": f"s{i:03d}", "name": f"schedule {i}", "spec": {"query": f"plumbers {i}", "location": "Omaha, NE"},
             "cron": cron_of(i), "tz": ZONES[i % 3], "catch_up": ("latest", "none")[(i // 4) % 2],
             "overlap": "skip"},
            max_bytes=65_536,
        )  # fmt: skip
        first = definition.rule.next_after(ORIGIN - timedelta(seconds=1))
        assert await store.add_schedule(definition, first, ORIGIN)
        rules[definition.id] = definition.rule
    return rules


@contextlib.asynccontextmanager
async def _finishing_jobs(store: SqlStore) -> AsyncIterator[None]:
    """Jobs run and end soon after they are queued, as a pipeline's would."""

    async def finish() -> None:
        while True:
            with contextlib.suppress(Exception):  # the test's own connection is not behind the cut
                async with store.database.writing() as session:
                    await session.execute(
                        "UPDATE jobs SET status = 'succeeded', finished_at = clock_timestamp() "
                        "WHERE status = 'queued' AND id LIKE 's-%'"
                    )
            await asyncio.sleep(0.1)  # a job's run time: about 1.2 simulated minutes

    task = asyncio.create_task(finish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until_sim(time: ScaledTime, when: datetime) -> datetime:
    async def reached() -> datetime | None:
        now = await time.now()
        return now if now >= when else None

    return await eventually(reached, 300.0, f"the simulated clock to reach {when:%H:%M}", every=0.01)


async def test_three_schedulers_fire_each_due_time_of_a_day_once(fresh_pg: str) -> None:
    parts = urlsplit(fresh_pg)
    async with (
        open_store(fresh_pg, migrate=True, pool_max=4) as opened,
        FaultProxy("127.0.0.1", 0, parts.hostname or "127.0.0.1", parts.port or 5432) as proxy,
    ):
        assert isinstance(opened, SqlStore)
        store = opened
        rules = await _seed(store)
        proxied = parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}").geturl()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.test_schedule_exactly_once", proxied, f"daemon-{n}",
                cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for n in range(3)
        ]  # fmt: skip
        try:
            for proc in procs:
                assert proc.stdout is not None
                assert await asyncio.wait_for(proc.stdout.readline(), 60.0) == b"ready\n"
            epoch = await store.database_now() + timedelta(seconds=0.5)
            time = ScaledTime(store, origin=ORIGIN, epoch=epoch, factor=FACTOR)
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"{epoch.isoformat()}\n".encode())
                await proc.stdin.drain()
            async with _finishing_jobs(store):
                await _until_sim(time, ORIGIN + timedelta(hours=6, seconds=10))
                procs[0].send_signal(signal.SIGKILL)  # mid-fire: most schedules are due on the hour
                cut_at = await _until_sim(time, ORIGIN + timedelta(hours=12, minutes=10))
                proxy.cut()
                restored_at = await _until_sim(time, ORIGIN + timedelta(hours=15, minutes=10))
                proxy.restore()
                await _until_sim(time, DAY_END + timedelta(minutes=30))
                for proc in procs[1:]:
                    proc.send_signal(signal.SIGTERM)
                outputs = [await asyncio.wait_for(proc.communicate(), 30.0) for proc in procs]
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        for out, err in outputs:
            crashes = [line for line in err.decode().splitlines() if "crashed" in line]
            sys.stdout.write(out.decode() + "".join(line + "\n" for line in crashes))
        codes = [proc.returncode for proc in procs]
        assert codes == [-signal.SIGKILL, 0, 0], (codes, outputs)
        await _check_the_day(store, rules, cut_at, restored_at)


async def _check_the_day(store: SqlStore, rules: dict[str, CronRule], cut_at: datetime, restored_at: datetime) -> None:
    grace = timedelta(seconds=GRACE_S)
    outcomes: Counter[str] = Counter()
    fired_jobs: set[str] = set()
    caught_up = 0
    missed_in_outage: Counter[str] = Counter()
    for schedule in await store.list_schedules():
        rule = rules[schedule.id]
        fires = await store.fires_of(schedule.id)
        expected, _ = rule.due_between(ORIGIN, schedule.next_due_at - timedelta(seconds=1), 10_000)
        # Exactly once: one row for each due time, none lost and none twice, up to the last handled...
        assert [f.due_at for f in fires] == expected, schedule.id
        # ... and the day's every due time handled.
        assert schedule.next_due_at > DAY_END, (schedule.id, schedule.next_due_at)
        outcomes.update(f.outcome for f in fires)
        for n, fire in enumerate(fires):
            if fire.outcome == "missed":
                # Missed only as catch_up says: a later due time was due too when it was decided
                # (only the latest fires), or, catch_up none, it was already past the grace.
                # Either way the outage's, or a stall's: a busy simulated hour on a loaded machine
                # is seconds of real time, and the SIGKILL's lapsed claims 16 simulated minutes.
                later = next((f for f in fires[n + 1 :] if f.outcome != "missed"), None)
                same_pass = later is not None and later.fired_at == fire.fired_at
                late = fire.fired_at - fire.due_at > grace
                assert same_pass or (schedule.catch_up == "none" and late), (schedule.id, fire, later)
                if cut_at <= fire.due_at <= restored_at:
                    missed_in_outage[schedule.catch_up] += 1
            if fire.outcome in ("fired", "queued"):
                assert fire.job_id is not None
                fired_jobs.add(fire.job_id)
                if schedule.catch_up == "none":
                    assert fire.fired_at - fire.due_at <= grace, (schedule.id, fire)
                elif n and fires[n - 1].outcome == "missed" and fires[n - 1].fired_at == fire.fired_at:
                    caught_up += 1  # the latest of the due times it had missed, fired when it could
    jobs = {job.id for job in await store.list_jobs(limit=100_000) if job.id.startswith("s-")}
    assert jobs == fired_jobs, "each fired due time has one job, and each schedule job one fire"
    assert outcomes["fired"] > 2000
    # The outage (three hours, past the grace of two) cost both kinds due times; latest caught up.
    assert missed_in_outage["latest"] > 0
    assert missed_in_outage["none"] > 0
    assert caught_up > 0, "catch_up latest fired the latest of the due times it had missed"
    sys.stdout.write(
        f"outcomes {dict(outcomes)}; missed in the outage {dict(missed_in_outage)}; caught up {caught_up}; "
        f"jobs {len(jobs)}\n"
    )


def main(argv: list[str]) -> int:
    import uvloop

    url, owner = argv
    return uvloop.run(_run_scheduler(url, owner))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
