"""Company grouping's cost (docs/chains.md): :func:`group_companies` alone, then the store's whole
regroup (read every lead, group, write what changed) on SQLite, first with every row new, then with
nothing changed, as at the end of each job. CPU seconds of this process (all its threads: the
grouping runs in one, aiosqlite in another) beside wall seconds, so a busy machine shows as the gap.

    .venv/bin/python bench/companies.py [--leads 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadlawk_daemon.companies import Member, group_companies
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import open_store


def _members(n: int) -> list[Member]:
    # Websites drawn from 0.8 n domains, so about a third of the leads share one with another.
    rng = random.Random(1)
    return [
        Member(f"p{i}", f"https://biz{rng.randrange(n * 4 // 5)}.example/", f"+1402{rng.randrange(10**7):07d}",
               f"{i} Main St")
        for i in range(n)
    ]  # fmt: skip


def _timed(label: str, began: tuple[float, float], extra: str = "") -> None:
    wall, cpu = time.perf_counter() - began[0], time.process_time() - began[1]
    print(f"{label}: {cpu:.2f} s CPU, {wall:.2f} s wall{extra}")


async def _store(members: list[Member]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with open_store(f"sqlite:///{Path(folder) / 'bench.db'}", migrate=True) as store:
            listings = [Listing(name=m.place_id, place_id=m.place_id, website=m.website, phone_e164=m.phone_e164,
                                address=m.address) for m in members]  # fmt: skip
            for i in range(0, len(listings), 5000):
                await store.upsert_leads(listings[i : i + 5000])
            for label in ("regroup, every row new", "regroup, nothing changed"):
                began = (time.perf_counter(), time.process_time())
                changed = await store.regroup_companies()
                _timed(f"SQLite {label}", began, f" ({changed} rows written)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    members = _members(args.leads)
    began = (time.perf_counter(), time.process_time())
    grouping = group_companies(members)
    companies = len({a.company_id for a in grouping.assignments.values()})
    _timed(f"group_companies, {args.leads} leads into {companies} companies", began)
    asyncio.run(_store(members))


if __name__ == "__main__":
    main()
