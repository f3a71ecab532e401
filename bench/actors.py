"""Actor runtime figures: pipeline throughput and crash-to-replacement latency, under uvloop.

(a) messages per second through three actors in a row with bounded mailboxes and trivial
    handlers, shaped as the daemon's pipeline (scraper → enricher → writer): the middle stage has
    a fair mailbox (one lane per job, ``JOBS`` jobs, served in turn), as the enricher has; next to
    a baseline of three plain coroutines joined by asyncio.Queue (the same bound, the same run),
    so the ratio shows what supervision, bookkeeping and fairness cost. ``--all-fair`` gives
    every stage a fair mailbox;
(b) the time from an actor's crash to its replacement handling its next message, p50 and p99,
    with no restart backoff.

Usage: .venv/bin/python bench/actors.py [--messages 300000] [--crashes 1000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's own name would shadow the `actors` package: import from the root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import statistics
import time

import orjson
import uvloop

from actors.actor import Actor, ActorCell
from actors.dead_letters import MemoryDeadLetters
from actors.limits import Limits
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

CAPACITY = 1000


# The pipeline's messages come from this many jobs, each a lane of the fair mailbox.
JOBS = 4


def settings(max_attempts: int = 3) -> Limits:
    return Limits(mailbox_capacity=CAPACITY, concurrency=1, max_attempts=max_attempts, handle_timeout=60)


def job_of(message: int) -> int:
    return message % JOBS


class Forward(Actor[int]):
    def __init__(self, cell: ActorCell[int], downstream: ActorCell[int]) -> None:
        super().__init__(cell)
        self.downstream = downstream

    async def handle(self, message: int) -> None:
        await self.downstream.tell(message)


class Sink(Actor[int]):
    def __init__(self, cell: ActorCell[int], total: int, done: asyncio.Event) -> None:
        super().__init__(cell)
        self.total = total
        self.done = done
        self.seen = 0

    async def handle(self, message: int) -> None:
        self.seen += 1
        if self.seen == self.total:
            self.done.set()


async def _running(children: list[ChildSpec]) -> tuple[Supervisor, asyncio.Task[None]]:
    sup = Supervisor("bench", children, max_restarts=1_000_000, period=1)
    ready = asyncio.Event()
    task = asyncio.create_task(sup.run(ready.set))
    await ready.wait()
    return sup, task


async def actor_pipeline(n: int, all_fair: bool = False) -> float:
    done = asyncio.Event()
    # As in the daemon: the scraper's and the writer's mailboxes are plain, the enricher's is fair.
    outer = job_of if all_fair else None
    sink: ActorCell[int] = ActorCell("s3", lambda c: Sink(c, n, done), settings(), lane_of=outer)
    middle: ActorCell[int] = ActorCell("s2", lambda c: Forward(c, sink), settings(), lane_of=job_of)
    first: ActorCell[int] = ActorCell("s1", lambda c: Forward(c, middle), settings(), lane_of=outer)
    sup, task = await _running([sink.child_spec(), middle.child_spec(), first.child_spec()])
    began = time.perf_counter()
    for i in range(n):
        await first.tell(i)
    await done.wait()
    elapsed = time.perf_counter() - began
    sup.request_stop()
    await task
    return n / elapsed


async def queue_pipeline(n: int) -> float:
    queues: list[asyncio.Queue[int]] = [asyncio.Queue(CAPACITY) for _ in range(3)]
    done = asyncio.Event()

    async def forward(src: asyncio.Queue[int], dst: asyncio.Queue[int]) -> None:
        while True:
            await dst.put(await src.get())

    async def sink(src: asyncio.Queue[int]) -> None:
        for _ in range(n):
            await src.get()
        done.set()

    async with asyncio.TaskGroup() as group:
        stages = [group.create_task(forward(queues[0], queues[1])), group.create_task(forward(queues[1], queues[2]))]
        group.create_task(sink(queues[2]))
        began = time.perf_counter()
        for i in range(n):
            await queues[0].put(i)
        await done.wait()
        elapsed = time.perf_counter() - began
        for stage in stages:
            stage.cancel()
    return n / elapsed


class Crashy(Actor[str]):
    """Raises on "crash"; records when a fresh instance handles "probe"."""

    def __init__(self, cell: ActorCell[str], marks: dict[str, float], handled: asyncio.Event) -> None:
        super().__init__(cell)
        self.marks = marks
        self.handled = handled

    async def handle(self, message: str) -> None:
        if message == "crash":
            self.marks["crash"] = time.perf_counter()
            raise RuntimeError("bench crash")
        self.marks["probe"] = time.perf_counter()
        self.handled.set()


async def restart_latency(crashes: int) -> list[float]:
    marks: dict[str, float] = {}
    handled = asyncio.Event()
    # One attempt: the crashing message is dead-lettered, so the next one handled is the probe.
    cell: ActorCell[str] = ActorCell(
        "crashy", lambda c: Crashy(c, marks, handled), settings(max_attempts=1),
        dead_letters=MemoryDeadLetters(capacity=10),
    )
    sup, task = await _running([cell.child_spec()])
    samples = []
    for _ in range(crashes):
        handled.clear()
        await cell.tell("crash")
        await cell.tell("probe")
        await handled.wait()
        samples.append(marks["probe"] - marks["crash"])
    sup.request_stop()
    await task
    assert cell.stats.restarts == crashes, (cell.stats.restarts, crashes)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(messages: int, crashes: int, all_fair: bool) -> None:
    await actor_pipeline(20_000, all_fair)  # warm-up
    await queue_pipeline(20_000)
    actor_rates, queue_rates = [], []
    for _ in range(3):
        actor_rates.append(await actor_pipeline(messages, all_fair))
        queue_rates.append(await queue_pipeline(messages))
    actors_rate = statistics.median(actor_rates)
    queues_rate = statistics.median(queue_rates)
    fair = "every stage" if all_fair else "the middle stage"
    print(f"three-stage actor pipeline:      {actors_rate:>12,.0f} messages/s (median of 3 x {messages:,})")
    print(f"fair mailbox at:                 {fair:>12}")
    print(f"three-stage asyncio.Queue chain: {queues_rate:>12,.0f} messages/s (baseline, same run)")
    print(f"actors / baseline:               {actors_rate / queues_rate:>12.2f}")
    samples = await restart_latency(crashes)
    p50, p99 = percentile(samples, 0.50) * 1000, percentile(samples, 0.99) * 1000
    print(f"crash -> replacement handles next message: p50 {p50:.3f} ms, p99 {p99:.3f} ms ({crashes} crashes)")
    print(
        orjson.dumps(
            {
                "bench": "actors",
                "fair_mailboxes": 3 if all_fair else 1,
                "pipeline_messages_per_s": round(actors_rate),
                "baseline_queue_messages_per_s": round(queues_rate),
                "ratio_to_baseline": round(actors_rate / queues_rate, 3),
                "restart_p50_ms": round(p50, 3),
                "restart_p99_ms": round(p99, 3),
                "target_messages_per_s": 100_000,
                "target_restart_p99_ms": 50,
            }
        ).decode()
    )


if __name__ == "__main__":
    import logging

    logging.disable(logging.CRITICAL)  # a thousand deliberate crashes need no log lines
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--crashes", type=int, default=1000)
    parser.add_argument("--all-fair", action="store_true", help="a fair mailbox at every stage, not only the middle")
    args = parser.parse_args()
    uvloop.run(main(args.messages, args.crashes, args.all_fair))
