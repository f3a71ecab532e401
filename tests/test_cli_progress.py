"""Progress bars on a terminal (``demo``, ``collect``, ``submit --wait``), through a real
pseudo-terminal; the plain progress lines a pipe gets are tests/test_demo.py's."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from leadlawk_daemon.store import open_store
from tests.pty_session import PtyProcess, cli_env
from tests.test_demo import PLAIN

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _seen(raw: str) -> str:
    """What the terminal showed, colours and cursor moves taken out."""
    return ANSI.sub("", raw)


def test_demo_draws_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'unused.db'}", {"LOG_LEVEL": "WARNING"})
    with PtyProcess(["demo"], env, cwd=tmp_path) as run:
        assert run.wait() == 0, run.output
        shown = _seen(run.output)
    assert "━" in shown  # rich's bar
    final = [line for line in shown.splitlines() if line.startswith("succeeded")]
    assert final, shown
    clock = r"\d:\d\d:\d\d"
    assert re.search(rf"found 20  enriched \d+  written 20 +\d+\.\d leads/s elapsed {clock} ETA {clock}", final[-1])
    assert not PLAIN.search(shown)  # the plain lines are for pipes (tests/test_demo.py)
    assert re.search(r"^job \S+: succeeded; 20 found", shown, re.MULTILINE)  # the summary after the bar is unchanged


def test_submit_wait_shows_what_the_job_waits_on_and_ends_with_it(db: str) -> None:
    async def running() -> None:
        async with open_store(db) as store:
            assert await store.lease_next_job("d1", 60) is not None  # job-a, the oldest
            await store.update_job("job-a", "d1", found=10, enriched=3, written=4,
                                   progress={"limit": 50, "waiting_on": ["pagespeed"]})

    async def finished() -> None:
        async with open_store(db) as store:
            await store.update_job("job-a", "d1", found=12, enriched=12, written=12, progress={"limit": 50})
            assert await store.finish_job("job-a", "d1", "succeeded")

    asyncio.run(running())
    with PtyProcess(["submit", "plumbers", "--id", "job-a", "--wait"], cli_env(db)) as run:
        run.read_until(r"found 10  enriched 3  written 4 .*waiting on pagespeed")
        asyncio.run(finished())
        assert run.wait() == 0, run.output
        shown = _seen(run.output)
    assert shown.splitlines()[0] == "job-a was submitted before (running); following it"
    last = shown.rstrip("\n").splitlines()[-1]
    assert re.match(r"succeeded .*found 12  enriched 12  written 12", last), shown
    assert "waiting on" not in last


def test_submit_wait_through_redis_draws_the_events_and_says_what_the_limited_view_cost(
    tmp_path: Path, redis_prefix: str
) -> None:
    import orjson
    import redis

    from tests.conftest import REDIS_TEST_URL

    redis_env = {"REDIS_URL": REDIS_TEST_URL, "LEADLAWK__REDIS__PREFIX": redis_prefix}
    env = cli_env(f"sqlite:///{tmp_path / 'r.db'}", redis_env)
    client = redis.Redis.from_url(REDIS_TEST_URL)
    channel = f"{redis_prefix}:events"

    def announce(kind: str, **fields: object) -> None:
        client.publish(channel, orjson.dumps({"type": kind, "job_id": "job-r", **fields}))

    try:
        with PtyProcess(["submit", "plumbers", "--id", "job-r", "--limit", "30", "--wait"], env) as run:
            run.read_until(r"^submitted job-r$")
            announce("job.progress", counters={"found": 9, "enriched": 2, "written": 5}, limit=30, waiting_on=["maps"])
            run.read_until(r"found 9  enriched 2  written 5 .*waiting on maps")
            announce("job.finished", status="succeeded", counters={"found": 30, "enriched": 30, "written": 30},
                     maps_view="limited")
            assert run.wait() == 0, run.output
            shown = _seen(run.output)
    finally:
        for key in client.scan_iter(match=f"{redis_prefix}:*"):
            client.delete(key)
        client.close()
    # The bar redraws one line (CR); what stays on screen is its last state, then the summary.
    assert re.match(r"succeeded .*found 30  enriched 30  written 30", shown.splitlines()[-2]), shown
    assert "Google Maps showed its limited view (limited)" in shown
