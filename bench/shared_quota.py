"""The shared PageSpeed pace: ours (GCRA turns + a start log, two Lua scripts) against ``limits``
(its async Redis storage, moving window), on the local Redis.

1. **Cost per call**: sequential admissions with a quota that never binds, one client: calls per
   second and microseconds per call (what one admission costs the caller and Redis).
2. **Correctness under concurrency**: ``--daemons`` limiters (each its own Redis client, as
   separate daemons are) with ``--callers`` callers each, taking turns for ``--windows`` windows
   of ``--window`` seconds against ``--quota`` per window. Figures, from the recorded starts:
   the most starts in any window (over the quota is an overrun), the use of the quota, the
   largest burst (most starts within 1 % of a window: what the service sees bunched, where any
   lateness on the way turns into an overrun), and Redis calls per start.

``limits`` has no waiting acquire: a caller refused asks ``get_window_stats`` when the window
frees up and sleeps until then, which is how it is meant to be used for a client-side pace.

Usage: ``python bench/shared_quota.py [--quota 200] [--window 2] [--windows 3] [--daemons 3]
[--callers 8]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.pagespeed.quota import WindowPacer
from leadlawk_daemon.quota.link import QuotaLink
from leadlawk_daemon.quota.pace import SharedPacer

REDIS_URL = "redis://127.0.0.1:6379/0"


def most_in_any_window(starts: list[float], window: float) -> int:
    ordered = sorted(starts)
    return max((i + 1 - bisect.bisect_right(ordered, t - window) for i, t in enumerate(ordered)), default=0)


class Counted:
    """Counts the Redis scripts/commands a limiter sends (round trips)."""

    calls = 0


def ours(prefix: str, quota: float, window: float) -> tuple[SharedPacer, QuotaLink]:
    clock = MonotonicClock()
    link = QuotaLink.from_url(REDIS_URL, prefix, clock=clock)
    original = link.run

    async def run(*args: Any) -> Any:
        Counted.calls += 1
        return await original(*args)

    link.run = run  # type: ignore[method-assign,assignment]
    full = WindowPacer(quota, window, clock=clock)
    pacer = SharedPacer(
        link, "bench:100s", per_window=full.per_window, window=window, interval=full.interval,
        local=lambda n: WindowPacer(quota // n, window, clock=clock), share=lambda n: quota // n,
    )
    return pacer, link


def theirs(prefix: str, quota: int, window: float) -> tuple[Callable[[], Awaitable[None]], RedisStorage]:
    storage = RedisStorage(REDIS_URL, implementation="redispy", key_prefix=prefix)
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(quota, int(window))

    async def acquire() -> None:
        while True:
            Counted.calls += 1
            if await limiter.hit(item, "bench"):
                return
            Counted.calls += 1
            stats = await limiter.get_window_stats(item, "bench")
            await asyncio.sleep(max(0.001, stats.reset_time - time.time()))

    return acquire, storage


async def cost_per_call(calls: int) -> dict[str, float]:
    pacer, link = ours(f"bench-sq-{uuid.uuid4().hex[:8]}", 1e9, 100.0)
    started = time.perf_counter()
    for _ in range(calls):
        await pacer.acquire()
    ours_s = time.perf_counter() - started
    await link.aclose()
    acquire, _ = theirs(f"bench-sq-{uuid.uuid4().hex[:8]}", 10**9, 100.0)
    started = time.perf_counter()
    for _ in range(calls):
        await acquire()
    theirs_s = time.perf_counter() - started
    return {
        "ours_calls_per_s": round(calls / ours_s),
        "ours_us_per_call": round(ours_s / calls * 1e6, 1),
        "limits_calls_per_s": round(calls / theirs_s),
        "limits_us_per_call": round(theirs_s / calls * 1e6, 1),
    }


async def concurrent(kind: str, quota: int, window: float, windows: int, daemons: int, callers: int) -> dict[str, Any]:
    prefix = f"bench-sq-{uuid.uuid4().hex[:8]}"
    starts: list[float] = []
    closers = []
    acquires: list[Callable[[], Awaitable[None]]] = []
    for _ in range(daemons):
        if kind == "ours":
            pacer, link = ours(prefix, quota, window)
            acquires.append(pacer.acquire)
            closers.append(link.aclose)
        else:
            acquire, _storage = theirs(prefix, quota, window)
            acquires.append(acquire)
    Counted.calls = 0

    async def caller(acquire: Callable[[], Awaitable[None]]) -> None:
        while True:
            await acquire()
            starts.append(time.time())

    began = time.time()
    try:
        async with asyncio.timeout(window * windows), asyncio.TaskGroup() as group:
            for acquire in acquires:
                for _ in range(callers):
                    group.create_task(caller(acquire))
    except TimeoutError:
        pass
    for close in closers:
        await close()
    elapsed = time.time() - began
    return {
        "max_in_window": most_in_any_window(starts, window),
        "quota": quota,
        "use": round(len(starts) / (quota * elapsed / window), 3),
        "largest_burst": most_in_any_window(starts, window / 100),
        "redis_calls_per_start": round(Counted.calls / max(1, len(starts)), 2),
        "starts": len(starts),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quota", type=int, default=200)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls for the cost per call")
    args = parser.parse_args()
    cost = await cost_per_call(args.calls)
    print(
        f"cost per call: ours {cost['ours_us_per_call']} us ({cost['ours_calls_per_s']}/s, two scripts), "
        f"limits {cost['limits_us_per_call']} us ({cost['limits_calls_per_s']}/s, one script)"
    )
    print(
        f"{args.daemons} daemons x {args.callers} callers, {args.quota} per {args.window:g} s, "
        f"{args.windows} windows:"
    )
    print(f"{'limiter':<8} {'max/window':>10} {'quota':>6} {'use':>6} {'burst/1%':>9} {'redis calls/start':>18}")
    results = {}
    for kind in ("ours", "limits"):
        result = await concurrent(kind, args.quota, args.window, args.windows, args.daemons, args.callers)
        results[kind] = result
        print(
            f"{kind:<8} {result['max_in_window']:>10} {result['quota']:>6} {result['use']:>6.3f} "
            f"{result['largest_burst']:>9} {result['redis_calls_per_start']:>18}"
        )
    output = {"bench": "shared_quota", **cost, "ours": results["ours"], "limits": results["limits"]}
    print(orjson.dumps(output).decode())


if __name__ == "__main__":
    uvloop.run(main())
