"""Scale-out proof: 1, 2 and 3 daemon processes on one PageSpeed stand-in, sharing one key's quota
over Redis; then one of the three is SIGKILLed.

Each daemon is a process of its own (``python bench/fleet.py --daemon …``, so that SIGKILL is a
real one) running the daemon's PageSpeed stage: the enricher as ``leadlawk run`` builds it, with
its quotas shared over Redis (:class:`~leadlawk_daemon.quota.SharedQuotas`, the code the daemon
wires in), fed an endless backlog. Not the whole daemon: at ``maps.navigations_per_minute`` (30)
the Google Maps stage, not the quota, would bound what three daemons enrich, and three Chromiums
on two cores would measure the machine.

The stand-in is bench/enrich.py's, in a process of its own: Google's 400 queries per 100 s and
Lighthouse's 10 to 40 s per call (uniform), on a time scale (``--scale``, default 1/5: a 100-s
window lasts 20 s; bench/enrich.py says why not shorter), and so are the daemons' times. It
counts requests as they reach it, as Google does.

Figures per run (after its first window, the in-flight limits' warm-up):

- requests per window: the stand-in's mean over the measured windows, and the most it saw in any
  window (its own sliding count; the quota is 400); quota use = requests ÷ what the quota allows;
- 429s (any is a failure: the fleet went over the quota);
- leads per minute (enriched, a result per lead; in bench time, so 5x Google's pace at 1/5);
- SIGKILL of one of three: the use of the quota in the first fifth of a window after the kill,
  and the time until the two left use >= 95 % of it again: the first moment from which the
  trailing fifth of a window (the measure's resolution: it cannot read less), as the stand-in saw
  it, stays at >= 95 % of the quota's pace; in bench seconds and unscaled (÷ scale); the target is
  lease_ttl + 10 s (40 s) unscaled.

- Redis cut for 30 s (unscaled) under three daemons (a fault proxy between them and Redis): the
  429s (the target is none) and the use of the quota during the cut, each daemon at its local
  share.

Usage: ``python bench/fleet.py [--quick] [--scale 0.2] [--windows 5]``; ``--quick`` (2 windows a
run, the kill and the cut within them) takes about 4 minutes. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
SELF = str(Path(__file__).resolve())
sys.path.insert(0, str(ROOT))

from actors.clock import MonotonicClock
from bench.enrich import BROKEN, GOOGLE_QUOTA, GOOGLE_WINDOW, StandIn, backlog, daemon_enricher, stand_in
from leadlawk_daemon.chaos import FaultProxy
from leadlawk_daemon.pagespeed.client import PageSpeedClient
from leadlawk_daemon.quota import SharedQuotas
from leadlawk_daemon.settings import load_settings

REDIS_URL = os.environ.get("LEADLAWK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
LATENCY = {"uniform": {"min": 10_000, "max": 40_000}}
SAMPLE = 0.1  # the stand-in's counters are read this often
CUT = 30.0  # seconds (unscaled) Redis is cut for in the last run


# -- a daemon (its own process) ----------------------------------------------------------------------


async def daemon(base: str, prefix: str, scale: float, redis_url: str) -> None:
    """The daemon's PageSpeed stage with shared quotas; prints its enriched count every 0.5 s."""
    settings = load_settings(
        environ={
            "REDIS_URL": redis_url,
            "LEADLAWK__REDIS__PREFIX": prefix,
            "LEADLAWK__PAGESPEED__QUERIES_PER_DAY": "10000000",
        }
    )
    shared = SharedQuotas.from_settings(settings, clock=MonotonicClock(), window=GOOGLE_WINDOW * scale)
    assert shared is not None
    enriched = 0

    async def report() -> None:
        while True:
            print(orjson.dumps({"enriched": enriched}).decode(), flush=True)
            await asyncio.sleep(0.5)

    async with PageSpeedClient(base, "bench-key") as client:
        enricher = daemon_enricher(client, settings, scale, shared=shared)
        async with asyncio.TaskGroup() as group:
            group.create_task(report())
            async for outcome in enricher.enrich_many(backlog()):
                if outcome.status == "enriched":
                    enriched += 1


@dataclass
class Daemon:
    process: asyncio.subprocess.Process
    enriched: int = 0
    reader: asyncio.Task[None] | None = None

    async def follow(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                self.enriched = int(orjson.loads(line)["enriched"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue


async def start_daemon(base: str, prefix: str, scale: float, redis_url: str) -> Daemon:
    process = await asyncio.create_subprocess_exec(
        sys.executable, SELF, "--daemon", base, "--prefix", prefix, "--scale", str(scale), "--redis", redis_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    started = Daemon(process)
    started.reader = asyncio.create_task(started.follow())
    return started


async def stop(daemons: list[Daemon]) -> None:
    for d in daemons:
        if d.process.returncode is None:
            d.process.kill()
    for d in daemons:
        await d.process.wait()
        if d.reader is not None:
            await d.reader


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Samples:
    """The stand-in's request and 429 counters over time."""

    at: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    throttled: list[int] = field(default_factory=list)

    def count_between(self, t0: float, t1: float) -> int:
        return self._value_at(t1) - self._value_at(t0)

    def _value_at(self, t: float) -> int:
        value = 0
        for at, requests in zip(self.at, self.requests, strict=True):
            if at > t:
                break
            value = requests
        return value


async def sample(service: StandIn, samples: Samples) -> None:
    while True:
        stats = await service.stats()
        samples.at.append(time.monotonic())
        samples.requests.append(int(stats["requests"]))
        samples.throttled.append(int(stats["status_429"]))
        await asyncio.sleep(SAMPLE)


def recovery(samples: Samples, killed: float, end: float, span: float, need: float) -> float | None:
    """Seconds from the kill until the trailing ``span`` holds >= ``need`` requests and keeps doing so."""
    ok_since: float | None = None
    for at in samples.at:
        if at < killed + span or at > end:
            continue
        met = samples.count_between(at - span, at) >= need
        ok_since = (ok_since or at) if met else None
    return None if ok_since is None else ok_since - killed


async def run(
    count: int, scale: float, windows: int, kill_after: int | None = None, cut_after: int | None = None
) -> dict[str, Any]:
    """``count`` daemons for ``windows`` windows; with ``kill_after``, one is SIGKILLed after that
    many; with ``cut_after``, Redis is cut then for 30 s (unscaled)."""
    window = GOOGLE_WINDOW * scale
    prefix = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    faults = {"latency_profile": LATENCY, "lighthouse_errors": BROKEN}
    replica = {"seed": 11, "quota_per_window": GOOGLE_QUOTA, "window_s": GOOGLE_WINDOW, "time_scale": scale}
    host, port = urlsplit(REDIS_URL).hostname or "127.0.0.1", urlsplit(REDIS_URL).port or 6379
    async with stand_in(faults, **replica) as service, FaultProxy("127.0.0.1", 0, host, port) as redis:
        redis_url = urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{redis.port}").geturl()
        daemons = [await start_daemon(service.base, prefix, scale, redis_url) for _ in range(count)]
        samples = Samples()
        sampler = asyncio.create_task(sample(service, samples))
        try:
            began = time.monotonic()
            await asyncio.sleep(window)  # warm-up: the in-flight limits find the latency
            async with service.session.post(f"{service.base}/_stats/reset") as response:
                response.raise_for_status()
            measured_from = time.monotonic()
            await asyncio.sleep(2 * SAMPLE)  # a reading taken before the reset must not count after it
            for series in (samples.at, samples.requests, samples.throttled):
                series.clear()
            enriched_from = sum(d.enriched for d in daemons)
            killed_at = cut_at = None
            if cut_after is not None:
                await asyncio.sleep(window * cut_after)
                redis.cut()  # every connection reset, new ones refused
                cut_at = time.monotonic()
                await asyncio.sleep(CUT * scale)
                redis.restore()
                await asyncio.sleep(window * (windows - cut_after) - CUT * scale)
            elif kill_after is not None:
                await asyncio.sleep(window * kill_after)
                victim = daemons[-1]
                victim.process.kill()  # SIGKILL
                killed_at = time.monotonic()
                await asyncio.sleep(window * (windows - kill_after))
            else:
                await asyncio.sleep(window * windows)
            ended = time.monotonic()
            stats = await service.stats()
            enriched = sum(d.enriched for d in daemons) - enriched_from
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await stop(daemons)
    elapsed = ended - measured_from
    allowed = GOOGLE_QUOTA * elapsed / window
    result: dict[str, Any] = {
        "daemons": count,
        "requests_per_window": round(int(stats["requests"]) / (elapsed / window), 1),
        "max_in_window": int(stats["max_in_window"]),
        "quota": GOOGLE_QUOTA,
        "quota_use": round(int(stats["requests"]) / allowed, 3),
        "429s": int(stats["status_429"]),
        "leads_per_min": round(enriched / elapsed * 60, 1),
        "seconds": round(elapsed, 1),
        "warmup_s": round(measured_from - began, 1),
    }
    if cut_at is not None:
        result |= {
            "cut_s": CUT,
            "use_during_cut": round(
                samples.count_between(cut_at, cut_at + CUT * scale) / (GOOGLE_QUOTA * CUT / GOOGLE_WINDOW), 3
            ),
        }
    if killed_at is not None:
        span = window / 5
        before = samples.count_between(killed_at - window, killed_at)
        back = recovery(samples, killed_at, ended, span, 0.95 * GOOGLE_QUOTA * span / window)
        first = samples.count_between(killed_at, killed_at + span)
        result |= {
            "use_before_kill": round(before / GOOGLE_QUOTA, 3),
            "use_first_fifth_after_kill": round(first / (GOOGLE_QUOTA * span / window), 3),
            "recovered_s": None if back is None else round(back, 2),
            "recovered_unscaled_s": None if back is None else round(back / scale, 1),
            "use_last_window": round(samples.count_between(ended - window, ended) / GOOGLE_QUOTA, 3),
        }
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 windows a run (about 4 minutes in all)")
    parser.add_argument("--scale", type=float, default=0.2, help="time scale (a 100-s window lasts 100 x scale s)")
    parser.add_argument("--windows", type=int, default=5, help="measured windows per run")
    parser.add_argument("--daemon", metavar="BASE", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--redis", default=REDIS_URL, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.daemon:
        await daemon(args.daemon, args.prefix, args.scale, args.redis)
        return
    windows = 2 if args.quick else args.windows
    window = GOOGLE_WINDOW * args.scale
    print(
        f"stand-in: {GOOGLE_QUOTA} per {GOOGLE_WINDOW:g} s and calls of 10-40 s, time x {args.scale:g} "
        f"(a window lasts {window:g} s); {windows} windows measured per run after one of warm-up"
    )
    print(f"{'daemons':>18} {'req/window':>10} {'max/window':>10} {'quota':>5} {'use':>6} {'429s':>5} {'leads/min':>9}")
    runs = []
    plans: list[tuple[str, int, dict[str, int]]] = [
        ("1", 1, {}),
        ("2", 2, {}),
        ("3, one SIGKILLed", 3, {"kill_after": max(1, windows // 2)}),
        (f"3, Redis cut {CUT:g} s", 3, {"cut_after": max(1, windows // 2)}),  # back within the run
    ]
    for label, count, plan in plans:
        # The kill and the cut get a window more to be measured in, except in a quick run.
        result = await run(count, args.scale, windows + (1 if plan and not args.quick else 0), **plan)
        runs.append(result)
        print(
            f"{label:>18} {result['requests_per_window']:>10} {result['max_in_window']:>10} {GOOGLE_QUOTA:>5} "
            f"{result['quota_use']:>6.3f} {result['429s']:>5} {result['leads_per_min']:>9}"
        )
    killed, cut = runs[2], runs[3]
    print(
        f"SIGKILL of one of three: {killed['use_before_kill']:.3f} of the quota in the window before, "
        f"{killed['use_first_fifth_after_kill']:.3f} in the first fifth of a window after; the two left used >= 95 % "
        f"(over a fifth of a window, the measure's resolution) from {killed['recovered_s']} s after the kill "
        f"({killed['recovered_unscaled_s']} s unscaled; target lease_ttl + 10 s = 40 s), "
        f"{killed['use_last_window']:.3f} in the last window"
    )
    print(
        f"Redis cut for {CUT:g} s (unscaled) under three: {cut['429s']} x 429, {cut['use_during_cut']:.3f} of the "
        f"quota used during the cut (each daemon at its local share, a third)"
    )
    print(orjson.dumps({"bench": "fleet", "scale": args.scale, "windows": windows, "runs": runs}).decode())


if __name__ == "__main__":
    uvloop.run(main())
