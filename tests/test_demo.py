"""``leadlawk demo`` from a clean directory, into a pipe, as a new user first runs it: the table of
leads, plain progress lines (no bar, no colour), and the nightly setup (a schedule fired at once, its
digest delivered, signed, to the inbox replica); a second demo finds nothing new for that schedule.
One pair of demos serves every check: each is a whole daemon with a browser. The bar drawn on a
terminal is tests/test_cli_progress.py's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The plain progress line a pipe gets when the job ends.
PLAIN = re.compile(r"^succeeded found +20  enriched +\d+  qualified +\d+  written +20 +\d+\.\ds$", re.MULTILINE)


def _demo(cwd: Path) -> subprocess.CompletedProcess[str]:
    unset = ("DATABASE_URL", "REDIS_URL", "PAGESPEED_API_KEY", "LEADLAWK_ADMIN_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "demo"], cwd=cwd, capture_output=True, text=True, timeout=180,
        env={**env, "PYTHONPATH": str(ROOT), "PORT": "8765"},
    )  # fmt: skip


@pytest.mark.timeout(400)  # two whole demos (a browser each), beside other workers' tests
def test_the_demo_prints_its_table_and_the_digest_a_schedule_delivered_and_only_new_leads_the_next_time(
    tmp_path: Path,
) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "business", "rating", "reviews"]
    rows = [line for line in lines[2:] if line[:3].strip().isdigit()]
    assert len(rows) == 20
    assert "succeeded; 20 found" in first.stdout
    assert (tmp_path / "leadlawk.db").exists()
    # It ends with where the console will be once the user runs the daemon (their PORT).
    assert lines[-1] == "the console: run `leadlawk run`, then open http://127.0.0.1:8765/", lines[-1]
    # Into a pipe, progress is plain lines: no bar, no escape codes.
    assert PLAIN.search(first.stderr), first.stderr
    assert "━" not in first.stderr
    assert "\x1b" not in first.stderr + first.stdout

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


def test_the_inbox_replica_runs_from_the_cli_checks_signatures_and_plays_faults() -> None:
    import time
    import urllib.request

    from leadlawk_daemon.deliveries.signing import sign

    process = subprocess.Popen(
        [sys.executable, "-m", "leadlawk_daemon", "replica", "inbox", "--secret", "s3cret-for-test"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url, smtp = process.stdout.readline().split()  # printed once it listens
        assert smtp.startswith("smtp://127.0.0.1:")

        def post(body: bytes, secret: bytes) -> int:
            headers = {"X-LeadLawk-Signature": sign(secret, body, int(time.time())), "X-LeadLawk-Delivery": "d1",
                       "X-LeadLawk-Page": "1/1", "Content-Type": "application/json"}  # fmt: skip
            request = urllib.request.Request(f"{url}/hooks/x", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as refused:
                return refused.code

        assert post(b'{"leads": [1, 2]}', b"s3cret-for-test") == 200
        assert post(b'{"leads": []}', b"wrong") == 200
        faults = urllib.request.Request(f"{url}/_faults", data=b'{"410": 1}', method="POST",
                                        headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(faults, timeout=10) as answer:
            assert answer.status == 200
        assert post(b"{}", b"s3cret-for-test") == 410
        assert post(b"{}", b"s3cret-for-test") == 200  # a counted fault: the next request only
        with urllib.request.urlopen(f"{url}/_received", timeout=10) as answer:
            received = json.loads(answer.read())
        hooks = received["webhooks"]
        assert [(h["signature_valid"], h["status"], h["leads"]) for h in hooks] == [
            (True, 200, 2),
            (False, 200, 0),
            (True, 410, 0),
            (True, 200, 0),
        ]
        assert hooks[0]["delivery_id"] == "d1"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
