"""A soak run: a continuous stream of jobs through one daemon, a random fault every 30-60 s.

    python bench/soak.py [--minutes 30] [--seed N]

The daemon runs as in the chaos suite (tests/chaos_harness.py: real PostgreSQL, Redis, Chromium,
both replicas, a fault proxy in front of each dependency). Jobs keep coming (two in flight,
over HTTP and the Redis stream in turn); every 30-60 s one fault strikes, each kind once (in a
shuffled order) before any strikes again: the chaos list (browser
killed or frozen, cuts, a partition, 429s, /sorry/, actor crashes, daemon SIGKILL/SIGTERM) and the
wider mix (refused connections on each dependency, 5xx bursts, a slow network, a Maps host that
does not resolve).
Every 10 s the daemon's RSS and open file descriptors are read from /proc, its asyncio tasks from
``leadlawk_asyncio_tasks`` when the daemon exports it, and the event-loop lag p99 of the last
window from the ``leadlawk_event_loop_lag_seconds`` histogram. At the end: job success rate
(the design's KPI: at least 99 %), lost and duplicated businesses, and the figures over time.
Not for CI: the default run lasts 30 minutes. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos_harness import TERMINAL, ChaosRig, JobExpectation, chaos_rig
from tests.daemon_process import DaemonProcess

QUERIES = ("plumbers", "dentists", "roofers", "bakers", "florists", "electricians", "tailors", "locksmiths")
LOCATIONS = ("Omaha, NE", "Austin, TX", "Leeds", "Lyon", "Toronto, ON")
IN_FLIGHT = 2
SAMPLE_EVERY = 10.0
LAG_METRIC = "leadlawk_event_loop_lag_seconds_bucket"
TASKS_METRIC = "leadlawk_asyncio_tasks"


# -- faults: each strikes, lasts a few seconds at most, and ends; the daemon must cope ------------------

async def kill_browser(rig: ChaosRig) -> str:
    return f"Chromium SIGKILL ({len(rig.signal_browser(signal.SIGKILL))} processes)"


async def freeze_browser(rig: ChaosRig) -> str:
    stopped = rig.signal_browser(signal.SIGSTOP)
    await asyncio.sleep(15)  # the daemon's bounded browser calls give up and replace it before this
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    return f"Chromium SIGSTOP ({len(stopped)} processes)"


async def cut(rig: ChaosRig, names: tuple[str, ...], seconds: float, blackhole: bool = False) -> str:
    for name in names:
        rig.proxies[name].blackhole() if blackhole else rig.proxies[name].cut()
    await asyncio.sleep(seconds)
    for name in names:
        rig.proxies[name].restore()
    return f"{'blackhole' if blackhole else 'cut'} {'+'.join(names)} {seconds:g}s"


async def pagespeed_429(rig: ChaosRig) -> str:
    await rig.replica_faults("pagespeed", {"quota_per_window": 1, "window_s": 1})
    await asyncio.sleep(5)
    await rig.replica_faults("pagespeed", {})
    return "PageSpeed 429s 5s"


async def maps_sorry(rig: ChaosRig) -> str:
    await rig.replica_faults("maps", {"sorry": 6})
    return "Maps /sorry/ next 6 visits"


async def refuse(rig: ChaosRig, names: tuple[str, ...], seconds: float) -> str:
    """Nothing listens: connections are refused, as when the server is down."""
    for name in names:
        await rig.proxies[name].refuse()
    await asyncio.sleep(seconds)
    for name in names:
        await rig.proxies[name].reopen()
    return f"refused {'+'.join(names)} {seconds:g}s"


async def slow_network(rig: ChaosRig, seconds: float = 8.0) -> str:
    for name in ("maps", "pagespeed"):
        rig.proxies[name].delay(1.5)
    await asyncio.sleep(seconds)
    for name in ("maps", "pagespeed"):
        rig.proxies[name].restore()
    return f"maps+pagespeed delayed 1.5 s per chunk for {seconds:g}s"


async def server_errors(rig: ChaosRig, which: str, seconds: float) -> str:
    await rig.replica_faults(which, {"server_error": True})
    await asyncio.sleep(seconds)
    await rig.replica_faults(which, {})
    return f"{which} answers 5xx for {seconds:g}s"


async def maps_dns_failure(rig: ChaosRig, seconds: float = 15.0) -> str:
    """The Maps host stops resolving: the daemon is restarted pointing at a name that never resolves
    (.invalid), then restarted again with the right one, as an operator fixing DNS would."""
    good = rig.env["LEADLAWK__MAPS__BASE_URL"]
    rig.env["LEADLAWK__MAPS__BASE_URL"] = "http://leadlawk-replica.invalid"
    first = await restart_daemon(rig, signal.SIGTERM)
    await asyncio.sleep(seconds)
    rig.env["LEADLAWK__MAPS__BASE_URL"] = good
    second = await restart_daemon(rig, signal.SIGTERM)
    return f"Maps host unresolvable for {seconds:g}s ({first}; {second})"


async def crash_actor(rig: ChaosRig) -> str:
    actor = random.choice(["writer", "enricher", "scraper"])
    code, _ = await rig.daemon.post(f"/debug/crash/{actor}")
    return f"crash {actor} ({code})"


async def restart_daemon(rig: ChaosRig, sig: signal.Signals) -> str:
    assert rig.daemon.proc is not None
    pid = rig.daemon.proc.pid
    rig.daemon.signal(sig)
    code = await rig.daemon.wait_exit(within=20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    rig.daemon.kill()
    rig.daemon = DaemonProcess(rig.tmp, env=rig.env, name=f"soak{rig.generation}")
    rig.generation += 1
    rig.daemon.start()
    await rig.daemon.wait_status("/health/ready", 200, within=60)
    return f"daemon {sig.name} (exit {code}) and restart"


FAULTS: dict[str, Callable[[ChaosRig], Awaitable[str]]] = {
    "browser_killed": kill_browser,
    "browser_hung": freeze_browser,
    "database_outage": lambda rig: cut(rig, ("postgres",), 4),
    "redis_outage": lambda rig: cut(rig, ("redis",), 4),
    "network_partition": lambda rig: cut(rig, ("postgres", "redis", "maps", "pagespeed"), 4, blackhole=True),
    "pagespeed_429": pagespeed_429,
    "maps_sorry": maps_sorry,
    "actor_crash": crash_actor,
    "daemon_sigkill": lambda rig: restart_daemon(rig, signal.SIGKILL),
    "daemon_sigterm": lambda rig: restart_daemon(rig, signal.SIGTERM),
    # The wider mix: refused connections, 5xx bursts, a slow network, a host that does not resolve.
    "maps_refused": lambda rig: refuse(rig, ("maps",), 6),
    "pagespeed_refused": lambda rig: refuse(rig, ("pagespeed",), 6),
    "database_refused": lambda rig: refuse(rig, ("postgres",), 4),
    "redis_refused": lambda rig: refuse(rig, ("redis",), 4),
    "maps_5xx": lambda rig: server_errors(rig, "maps", 6),
    "pagespeed_5xx": lambda rig: server_errors(rig, "pagespeed", 8),
    "slow_network": slow_network,
    "maps_dns": maps_dns_failure,
}


# -- sampling -------------------------------------------------------------------------------------------------

def proc_figures(pid: int) -> tuple[float | None, int | None]:
    """(RSS in MB, open fds) of ``pid`` from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None, None
    rss = next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return rss, fds


def lag_buckets(metrics: dict[str, float]) -> dict[float, float]:
    out: dict[float, float] = {}
    for key, value in metrics.items():
        if key.startswith(LAG_METRIC + "{"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = value
    return out


def p99(now: dict[float, float], before: dict[float, float]) -> float | None:
    """The 99th percentile's bucket bound from cumulative bucket deltas; None without samples."""
    bounds = sorted(now)
    counts = [now[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    target = 0.99 * counts[-1]
    return next(b for b, c in zip(bounds, counts, strict=True) if c >= target)


async def sampler(rig: ChaosRig, samples: list[dict[str, Any]], began: float, stop: asyncio.Event) -> None:
    before: dict[float, float] = {}
    pid = -1
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)
        proc = rig.daemon.proc
        if proc is None or proc.poll() is not None:
            continue
        if proc.pid != pid:
            pid, before = proc.pid, {}  # a restarted daemon starts its histogram again
        rss, fds = proc_figures(pid)
        try:
            metrics = await rig.metrics()
        except (OSError, AssertionError, TimeoutError):
            continue
        buckets = lag_buckets(metrics)
        samples.append({
            "t_s": round(time.monotonic() - began, 1),
            "pid": pid,
            "rss_mb": None if rss is None else round(rss, 1),
            "fds": fds,
            "tasks": metrics.get(TASKS_METRIC),
            "loop_lag_p99_s": p99(buckets, before),
        })
        before = buckets
        s = samples[-1]
        print(f"  t={s['t_s']:>6}s pid {pid} rss {s['rss_mb']} MB fds {fds} tasks {s['tasks']} "
              f"lag p99 {s['loop_lag_p99_s']}", flush=True)


# -- the run --------------------------------------------------------------------------------------------------

async def feeder(rig: ChaosRig, stop: asyncio.Event, rng: random.Random) -> None:
    n = 0
    while not stop.is_set():
        rows = await _quiet(rig.job_rows())
        running = sum(1 for r in (rows or {}).values() if r["status"] not in TERMINAL)
        pending = len(rig.jobs) - len(rows or {})  # submitted over the stream, not yet persisted
        if rows is not None and running + pending < IN_FLIGHT:
            n += 1
            job = JobExpectation(f"soak-{n}", rng.choice(QUERIES), rng.choice(LOCATIONS), limit=rng.randint(10, 40))
            try:
                await (rig.submit_http(job) if n % 2 else rig.submit_stream(job))
            except (OSError, AssertionError, TimeoutError):
                n -= 1  # refused (the daemon is down or not ready): not accepted, not counted
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _quiet(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except Exception:
        return None


async def soak(minutes: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    random.seed(seed)
    with tempfile.TemporaryDirectory(prefix="leadlawk-soak-") as tmp:
        async with chaos_rig(Path(tmp)) as rig:
            began = time.monotonic()
            end = began + minutes * 60
            stop = asyncio.Event()
            samples: list[dict[str, Any]] = []
            faults: list[dict[str, Any]] = []
            deck: list[str] = []
            async with asyncio.TaskGroup() as group:
                group.create_task(feeder(rig, stop, rng))
                group.create_task(sampler(rig, samples, began, stop))
                while time.monotonic() < end:
                    await asyncio.sleep(min(rng.uniform(30, 60), max(0.0, end - time.monotonic())))
                    if time.monotonic() >= end:
                        break
                    if not deck:
                        # Every kind of fault strikes once before any strikes again.
                        deck = rng.sample(list(FAULTS), len(FAULTS))
                    name = deck.pop()
                    at = round(time.monotonic() - began, 1)
                    try:
                        what = await FAULTS[name](rig)
                    except Exception as exc:  # a fault that could not strike is reported, the soak goes on
                        what = f"could not inject: {exc!r}"[:200]
                    faults.append({"t_s": at, "fault": name, "detail": what})
                    print(f"t={at:>6}s fault {name}: {what}", flush=True)
                stop.set()
            print("stream stopped; waiting for the jobs in flight", flush=True)
            with contextlib.suppress(AssertionError):
                await rig.wait_finished(180)
            rows = await rig.job_rows()
            invariants = await rig.check(expected_dead_letters=None)
    statuses = [r["status"] for r in rows.values()]
    accepted = len(rig.jobs)
    succeeded = statuses.count("succeeded")
    steady = samples[len(samples) // 4:] or samples  # after warm-up
    rss = [s["rss_mb"] for s in steady if s["rss_mb"] is not None]
    fds = [s["fds"] for s in steady if s["fds"] is not None]
    lags = [s["loop_lag_p99_s"] for s in samples if s["loop_lag_p99_s"] is not None]
    tasks = [s["tasks"] for s in steady if s["tasks"] is not None]
    return {
        "bench": "soak",
        "minutes": minutes,
        "jobs_accepted": accepted,
        "jobs_succeeded": succeeded,
        "jobs_not_finished": accepted - sum(1 for s in statuses if s in TERMINAL),
        "success_rate": round(succeeded / accepted, 4) if accepted else None,
        "lost": invariants.lost,
        "duplicates": invariants.duplicates,
        "dead_letters": invariants.dead_letters,
        "problems": invariants.problems[:20],
        "faults": faults,
        "rss_mb_after_warmup": {"min": min(rss, default=None), "max": max(rss, default=None)},
        "fds_after_warmup": {"min": min(fds, default=None), "max": max(fds, default=None)},
        "tasks_after_warmup": {"min": min(tasks, default=None), "max": max(tasks, default=None)}
        if tasks else "not exported (leadlawk_asyncio_tasks missing)",
        "loop_lag_p99_s_max": max(lags, default=None),
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the fault and job choices")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    report = uvloop.run(soak(args.minutes, args.seed))
    print(f"jobs: {report['jobs_succeeded']}/{report['jobs_accepted']} succeeded "
          f"({(report['success_rate'] or 0) * 100:.1f} %, target >= 99 %); lost {report['lost']}, "
          f"duplicates {report['duplicates']}; {len(report['faults'])} faults")
    print(f"daemon RSS after warm-up {report['rss_mb_after_warmup']} MB, fds {report['fds_after_warmup']}, "
          f"tasks {report['tasks_after_warmup']}, loop lag p99 max {report['loop_lag_p99_s_max']} s")
    print(orjson.dumps(report).decode())
    return 0 if report["lost"] == 0 and report["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
