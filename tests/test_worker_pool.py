"""The budgeted worker pool: a task over its CPU budget (or its wall limit) is stopped and answered
"too slow", a worker that dies is replaced, the loop stays responsive meanwhile, shutdown leaves
no process; and through it, a page slow to read makes its site ``unreadable`` / ``too slow``, in
the daemon's site client and in ``leadlawk site FILE`` (within 2 s), and a Google page slow to
parse fails only its search or its lead."""

from __future__ import annotations

import asyncio
import os
import pickle
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from actors.clock import FakeClock
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.parse_pool import ParsePool
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeError
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.resilience.worker_pool import (
    TOO_SLOW,
    BudgetExceeded,
    PoolUnavailable,
    WorkerDied,
    WorkerPool,
)
from leadlawk_daemon.resilience.worker_process import NICENESS
from leadlawk_daemon.settings import SitesSettings, load_settings
from leadlawk_daemon.sites import SiteClient, SiteStatus
from leadlawk_daemon.sites.extract_pool import CLI_BUDGET
from tests import worker_tasks
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

BUDGET = 0.3  # CPU seconds: short, so a stopped task costs the suite little
# The shared pool's wall limit: so far past the budget that only the CPU budget can stop a burner
# in time, however busy the machine.
WALL = 60.0
HOLD_BUDGET_S = 0.030  # the loop's longest hold, in its own CPU time, while a worker works
ROOT = Path(__file__).resolve().parent.parent
# The brief's hostile page: a match of the old address pattern started after every quote.
HOSTILE_QUOTES = ("<html><body><p>" + "'a" * 131_072 + "@</p></body></html>").encode()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


class LoopHolds:
    """The longest the loop thread spent on its own CPU between two ticks ``TICK_S`` apart.

    Its CPU time, not the wall time between ticks: on a machine that other work keeps busy the
    loop is also late because the kernel did not run it, and only a hold of its own is ours.
    """

    TICK_S = 0.002

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_late = 0.0
        self.ticks = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            cpu, due = time.thread_time(), loop.time() + self.TICK_S
            await asyncio.sleep(self.TICK_S)
            self.worst = max(self.worst, time.thread_time() - cpu)
            self.worst_late = max(self.worst_late, loop.time() - due)
            self.ticks += 1

    def stop(self) -> None:
        self._stop.set()

    def check(self, min_ticks: int = 10) -> None:
        assert self.ticks >= min_ticks, "the sampler ran while the work went on"
        assert self.worst < HOLD_BUDGET_S, (
            f"the loop held itself {self.worst * 1000:.1f} ms (late at worst {self.worst_late * 1000:.1f} ms)"
        )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool() -> AsyncIterator[WorkerPool]:
    async with WorkerPool(workers=1, budget=BUDGET, wall=WALL, preload=(worker_tasks.__name__,)) as running:
        yield running


async def test_a_task_over_budget_answers_too_slow_and_the_next_runs_on_a_new_worker(pool: WorkerPool) -> None:
    before = await pool.run(worker_tasks.pid)
    holds = LoopHolds()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(holds.run())
        try:
            with pytest.raises(BudgetExceeded) as lost:
                await pool.run(worker_tasks.burn_cpu)  # stopped by its CPU budget: the wall limit is 60 s
        finally:
            holds.stop()
    assert lost.value.reason == TOO_SLOW
    assert not _alive(before)
    assert pool.pids == []  # the next task starts a replacement
    after = await pool.run(worker_tasks.pid)
    assert after != before
    assert pool.pids == [after]
    assert await pool.run(worker_tasks.length, b"page") == 4
    # The worker burned a core for the whole budget, and a replacement started; the loop went on.
    holds.check()


async def test_a_task_deaf_to_the_budget_timer_is_stopped_by_the_cpu_limit(pool: WorkerPool) -> None:
    started = time.process_time()
    with pytest.raises(BudgetExceeded):
        await pool.run(worker_tasks.burn_cpu_deaf_to_the_timer)  # RLIMIT_CPU: within 1 s of CPU more
    assert time.process_time() - started < 0.5  # it burned its own core, not ours
    assert await pool.run(worker_tasks.length, b"x") == 1


async def test_a_task_that_holds_its_worker_without_cpu_is_stopped_at_the_wall_limit() -> None:
    wall = 0.5
    async with WorkerPool(budget=BUDGET, wall=wall, preload=(worker_tasks.__name__,)) as pool:
        started = time.monotonic()
        with pytest.raises(BudgetExceeded):
            await pool.run(worker_tasks.hold_without_cpu, 60.0)
        assert wall <= time.monotonic() - started < 30.0
        assert await pool.run(worker_tasks.length, b"x") == 1


async def test_a_worker_dying_under_a_task_loses_that_task_only(pool: WorkerPool) -> None:
    before = await pool.run(worker_tasks.pid)
    with pytest.raises(WorkerDied) as lost:
        await pool.run(worker_tasks.die_by, signal.SIGKILL)
    assert "SIGKILL" in lost.value.reason
    after = await pool.run(worker_tasks.pid)
    assert after != before


async def test_a_worker_yields_the_cpu_to_the_loop(pool: WorkerPool) -> None:
    assert await pool.run(worker_tasks.niceness) == os.getpriority(os.PRIO_PROCESS, 0) + NICENESS


async def test_a_worker_killed_while_idle_costs_the_next_task_nothing(pool: WorkerPool) -> None:
    before = await pool.run(worker_tasks.pid)
    os.kill(before, signal.SIGKILL)
    await eventually(lambda: not _running(before), what="the idle worker died")
    assert await pool.run(worker_tasks.length, b"page") == 4
    assert await pool.run(worker_tasks.pid) != before


async def test_the_task_s_own_error_reaches_the_caller_and_the_worker_stays(pool: WorkerPool) -> None:
    before = await pool.run(worker_tasks.pid)
    with pytest.raises(ValueError, match="not a page"):
        await pool.run(worker_tasks.refuse, "not a page")
    assert await pool.run(worker_tasks.pid) == before


async def test_callers_wait_their_turn_for_the_one_worker(pool: WorkerPool) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(pool.run(worker_tasks.hold_without_cpu, 0.2) for _ in range(3)))
    assert results == [None, None, None]
    assert time.monotonic() - started >= 0.6  # one at a time: the pool's bound held


async def test_a_2_mb_page_costs_the_loop_a_pickle_of_bytes(pool: WorkerPool) -> None:
    page = os.urandom(2 * 1024 * 1024)
    started = time.thread_time()
    for _ in range(10):
        pickle.dumps((worker_tasks.length, (page,)), protocol=pickle.HIGHEST_PROTOCOL)
    pickling = (time.thread_time() - started) / 10
    holds = LoopHolds()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(holds.run())
        started = time.perf_counter()
        try:
            for _ in range(10):
                assert await pool.run(worker_tasks.length, page) == len(page)
        finally:
            holds.stop()
    round_trip = (time.perf_counter() - started) / 10
    print(f"2 MiB page: pickled on the loop in {pickling * 1000:.2f} ms; round trip {round_trip * 1000:.1f} ms; "
          f"longest hold of the loop {holds.worst * 1000:.1f} ms")
    assert pickling < 0.005
    holds.check()


async def test_shutdown_stops_every_worker_even_one_at_work() -> None:
    pool = WorkerPool(workers=2, budget=30.0, preload=(worker_tasks.__name__,))
    async with pool:
        pids = pool.pids
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
        busy = asyncio.ensure_future(pool.run(worker_tasks.burn_cpu))
        await eventually(lambda: pool.busy == 1, what="a worker at work")
        started = time.monotonic()
    assert time.monotonic() - started < pool.stop_timeout
    with pytest.raises(PoolUnavailable):
        await busy
    assert not [pid for pid in pids if _alive(pid)]
    with pytest.raises(PoolUnavailable):
        await pool.run(worker_tasks.pid)


async def test_a_pool_whose_workers_cannot_start_is_unavailable_and_leaves_nothing() -> None:
    pool = WorkerPool(workers=1, budget=1.0, preload=("tests.no_such_module",), start_timeout=20.0)
    with pytest.raises(PoolUnavailable, match="did not start"):
        async with pool:
            pass
    assert pool.pids == []


# -- through the site client ------------------------------------------------------------------


def _site_settings(**changes: Any) -> SitesSettings:
    base = load_settings().sites.model_dump()
    if "allowed_networks" in SitesSettings.model_fields:
        base["allowed_networks"] = ["127.0.0.0/8"]  # the egress policy: loopback test servers allowed
    return SitesSettings.model_validate({**base, "proxy": None, "ca_file": None, "timeout": 10.0, **changes})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hostile_site() -> AsyncIterator[str]:
    """A loopback website whose every page is the hostile page; its base URL."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=HOSTILE_QUOTES, content_type="text/html")

    async def robots(_: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_a_page_slow_to_read_makes_its_site_unreadable_too_slow(
    hostile_site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow through a function of ours, whatever the extraction patterns become.
    monkeypatch.setattr("leadlawk_daemon.sites.client.page_facts", worker_tasks.burn_page_facts)
    holds = LoopHolds()
    async with SiteClient(_site_settings(parse_budget=BUDGET)) as client, asyncio.TaskGroup() as tasks:
        tasks.create_task(holds.run())
        try:
            report = await client.inspect(hostile_site)
        finally:
            holds.stop()
    assert (report.status, report.reason) == (SiteStatus.UNREADABLE, TOO_SLOW)
    assert report.unreachable is False  # the page's fact: never counted by the egress breaker
    assert report.http_status == 200
    holds.check()


async def test_the_256_kib_quote_page_never_holds_the_loop(hostile_site: str) -> None:
    """The brief's page, read for real: unreadable while the address pattern backtracks on it,
    read in full once it does not; never on the loop, never past its budget."""
    holds = LoopHolds()
    async with SiteClient(_site_settings(parse_budget=0.5)) as client, asyncio.TaskGroup() as tasks:
        tasks.create_task(holds.run())
        try:
            report = await client.inspect(hostile_site)
        finally:
            holds.stop()
    assert len(HOSTILE_QUOTES) > 256 * 1024
    assert report.unreachable is False
    if report.status is SiteStatus.UNREADABLE:
        assert report.reason == TOO_SLOW
    else:
        assert report.status is SiteStatus.OK
    # The page is read in about 15 ms of CPU now that no pattern backtracks on it: under load only a
    # few 2 ms ticks fit in the read (9 in a loaded fresh-clone run), and a few show it ran.
    holds.check(min_ticks=3)


# -- the Maps parser ---------------------------------------------------------------------------


async def test_a_maps_page_past_its_budget_fails_its_search_or_its_lead_only() -> None:
    """A results page over budget is its search's failure (ScrapeError, as a page that is no feed);
    a place page over budget is its lead's (no details, as an unavailable place page)."""
    clock = FakeClock()
    breaker = CircuitBreaker("maps", failure_threshold=5, reset_timeout=30.0, call_timeout=None, clock=clock)
    # 1 ms of CPU: any page of this size needs more, however the parser is written.
    page = "<html><body><div role='feed'>" + "<div><a href='/maps/place/x'>x</a></div>" * 20_000 + "</div>"
    async with ParsePool(budget=0.001) as parsers:
        scraper = MapsScraper(
            cast(BrowserPool, None), load_settings().maps, breaker=breaker, clock=clock, parsers=parsers
        )
        with pytest.raises(ScrapeError, match=TOO_SLOW):
            await scraper.read_feed(page)
        assert await scraper.read_place_page(page, "https://www.google.com/maps/place/x") is None
        assert breaker.state is BreakerState.CLOSED  # not Google's outage


# -- leadlawk site FILE -----------------------------------------------------------------------


async def _site_command(path: Path, **env: str) -> tuple[dict[str, Any], float, float]:
    """What ``leadlawk site FILE`` printed, its wall time, and the CPU it and its worker spent."""
    cpu = _children_cpu()
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leadlawk_daemon", "site", str(path),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, **env},
    )
    out, _ = await process.communicate()
    took = time.monotonic() - started
    assert process.returncode == 0
    result: dict[str, Any] = orjson.loads(out)
    return result, took, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every descendant waited for
    return usage.ru_utime + usage.ru_stime


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def plain_page_cost(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, float]:
    """What ``leadlawk site FILE`` costs on a one-line page: wall time and CPU (it and its worker)."""
    plain = tmp_path_factory.mktemp("plain") / "plain.html"
    plain.write_text("<html><body><a href='mailto:x@plain.example'>x</a></body></html>")
    result, took, cpu = await _site_command(plain)
    assert result["emails"] == ["x@plain.example"]
    return took, cpu


@pytest.mark.parametrize(
    ("name", "page", "env"),
    [
        # 2 MB of links: linear to read, and still far more than 50 ms of CPU in any extractor.
        ("links", b"<html><body>" + b'<a href="/contact-us">x</a>' * 75_000 + b"</body></html>",
         {"LEADLAWK__SITES__PARSE_BUDGET": "50ms"}),
        ("quotes", HOSTILE_QUOTES, {}),
    ],
)
async def test_site_command_answers_in_time_on_a_hostile_page(
    tmp_path: Path, plain_page_cost: tuple[float, float], name: str, page: bytes, env: dict[str, str]
) -> None:
    """Within 2 s when the machine is idle (1.1-1.5 s measured). Wall time on a machine that other
    work keeps busy says little, so the test bounds the CPU the command and its worker spend on
    the page: what a one-line page costs, plus the page's budget; unbudgeted, the quote page
    alone cost minutes before the address patterns were made linear."""
    hostile = tmp_path / f"{name}.html"
    hostile.write_bytes(page)
    plain_took, plain_cpu = plain_page_cost
    result, took, cpu = await _site_command(hostile, **env)
    print(f"leadlawk site FILE: {took:.2f} s ({cpu:.2f} s of CPU) on the {name} page ({result['status']}), "
          f"{plain_took:.2f} s ({plain_cpu:.2f} s) on a plain one")
    if name == "links":
        assert (result["status"], result["reason"]) == ("unreadable", TOO_SLOW)
    else:  # unreadable while the address pattern backtracked on it, read in full since it does not
        assert result["status"] in ("ok", "unreadable")
    assert cpu < plain_cpu + CLI_BUDGET + 0.3
