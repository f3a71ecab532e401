"""``leadlawk demo`` ends with the nightly setup: a schedule fired at once, its digest delivered,
signed, to the inbox replica; a second demo finds nothing new for that schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _demo(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PAGESPEED_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "demo"], cwd=cwd, capture_output=True, text=True, timeout=180,
        env={**env, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def test_the_demo_shows_the_digest_a_schedule_delivered_and_only_new_leads_the_next_time(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "schedule demo-nightly (0 2 * * * America/Chicago) fired now" in first.stderr
    digest = first.stdout.split("The digest the receiver got", 1)[1]
    assert "signature valid" in digest
    new = int(digest.split("new to the schedule ", 1)[1].split(",", 1)[0])
    assert new > 0
    assert digest.count("\n  - ") == new
    second = _demo(tmp_path)  # the same database: the schedule's ledger remembers
    assert second.returncode == 0, second.stderr[-3000:]
    assert "new to the schedule 0," in second.stdout.split("The digest the receiver got", 1)[1]
    listed = subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "deliveries", "list"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": ""},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("delivered") == 2
