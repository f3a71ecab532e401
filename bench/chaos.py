"""The chaos scenarios as figures: one row per fault, what was lost, duplicated, and the time to recover.

    python bench/chaos.py [--only NAME ...]

Runs the same scenarios as ``pytest -m chaos`` (tests/chaos_harness.py): each against a fresh
``leadlawk run`` with real PostgreSQL, Redis and Chromium, both replicas, and a fault proxy in
front of each dependency. "ready" is the time from the end of the fault to ``/health/ready``
answering 200; "progress" to the jobs' persisted counters moving again (or every job finished).
Needs PostgreSQL (LEADLAWK_TEST_PG) and Redis (LEADLAWK_TEST_REDIS) as the tests do.
The last line is one JSON object: {"bench": "chaos", "scenarios": [...]}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos_harness import SCENARIOS, ScenarioResult, run_scenario


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


def row(result: ScenarioResult) -> str:
    return (
        f"{result.name:<23} {result.fault[:58]:<58} {result.lost:>4} {result.duplicates:>5} "
        f"{_seconds(result.ready_s):>7} {_seconds(result.progress_s):>8} {'< ' + format(result.bound_s, 'g') + 's':>6}"
        f"  {'ok' if result.ok else 'MISSED: ' + '; '.join(result.problems)[:200]}"
    )


async def main(names: list[str]) -> int:
    header = f"{'scenario':<23} {'fault':<58} {'lost':>4} {'dupes':>5} {'ready':>7} {'progress':>8} {'target':>6}"
    print(header)
    print("-" * len(header))
    results: list[ScenarioResult] = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as tmp:
            try:
                result = await run_scenario(name, Path(tmp))
            except AssertionError as exc:
                result = ScenarioResult(name, "(scenario could not run)", 0, 0, None, None, 0.0,
                                        [str(exc).splitlines()[0][:300]])
        results.append(result)
        print(row(result), flush=True)
        if "actor_back_s" in result.extra:
            print(f"{'':<23} actors back (restarted) after: "
                  + ", ".join(f"{a} {s:.3f}s" for a, s in result.extra["actor_back_s"].items()))
    print(orjson.dumps({"bench": "chaos", "scenarios": [r.to_dict() for r in results]}).decode())
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[s.name for s in SCENARIOS], help="run only these")
    args = parser.parse_args()
    sys.exit(uvloop.run(main(args.only or [s.name for s in SCENARIOS])))
