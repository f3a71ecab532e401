"""A stored job's lifecycle has one owner: ``leadlawk_daemon/jobs/lifecycle.py``.

The tree is read (its AST, not its text): only the lifecycle module calls the store's
status-changing methods, and only it publishes ``job.finished`` and ``job.progress``. And the CLI,
with no daemon running, cancels a queued job through it: the cancel is announced on Redis.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from leadlawk_daemon.intake.events import events_channel
from tests.conftest import REDIS_TEST_URL
from tests.daemon_process import ROOT
from tests.support.ops_db import seed_ops_db
from tests.test_cli_control import cli

pytestmark = pytest.mark.timeout(120)

LIFECYCLE = ROOT / "leadlawk_daemon" / "jobs" / "lifecycle.py"
# Every method of the Store protocol (store/base.py) that changes a job's status, its lease or its
# attempts. update_job is one too: it takes a status.
STATUS_CHANGING = frozenset({
    "lease_next_job", "fail_exhausted_jobs", "renew_lease", "update_job", "finish_job", "cancel_job",
    "release_lease", "requeue_job",
})
ANNOUNCEMENTS = frozenset({"job.finished", "job.progress"})


def _production_modules() -> Iterator[Path]:
    for top in ("leadlawk_daemon", "actors", "supervisors"):
        for path in sorted((ROOT / top).rglob("*.py")):
            # The store defines these methods (and its implementations call each other).
            if "store" not in path.relative_to(ROOT).parts[1:2]:
                yield path


def _status_changes(tree: ast.AST) -> list[tuple[int, str]]:
    """Every reference to a status-changing store method: a call, or the method passed on to be called.

    A module's function of the same name (``control.cancel_job``, the CLI's command) is not the store's."""
    modules = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    return [
        (node.lineno, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in STATUS_CHANGING
        and not (isinstance(node.value, ast.Name) and node.value.id in modules)
    ]


def _announcements(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``job.finished`` or ``job.progress`` written in the code (the event's type is a literal)."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ANNOUNCEMENTS
    ]


def test_the_scan_sees_what_it_looks_for() -> None:
    # A scan that finds nothing anywhere could not fail: it must see the lifecycle's own calls.
    tree = ast.parse(LIFECYCLE.read_text())
    assert {name for _, name in _status_changes(tree)} == STATUS_CHANGING
    assert {value for _, value in _announcements(tree)} == ANNOUNCEMENTS
    planted = ast.parse("async def f(store):\n    await store.finish_job('j', 'me', 'failed')\n")
    assert _status_changes(planted) == [(2, "finish_job")]
    command = ast.parse("from leadlawk_daemon import control\ncontrol.cancel_job(settings, 'j', out)\n")
    assert _status_changes(command) == []


def test_only_the_lifecycle_changes_a_stored_jobs_status() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in _production_modules()
        if path != LIFECYCLE
        for line, name in _status_changes(ast.parse(path.read_text()))
    }
    assert offenders == set()


def test_only_the_lifecycle_announces_a_jobs_progress_and_end() -> None:
    # Event vocabularies (intake/events.py lists the types, the console and the CLI read them) name the
    # types without publishing them: a publish is a call whose first argument is the literal.
    offenders = set()
    for path in _production_modules():
        if path == LIFECYCLE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "publish"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in ANNOUNCEMENTS
            ):
                offenders.add(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == set()


async def _cancel_from_cli(db: str, job_id: str, prefix: str) -> tuple[int, list[dict[str, object]]]:
    client = aioredis.Redis.from_url(REDIS_TEST_URL)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(events_channel(prefix))
        env = {"REDIS_URL": REDIS_TEST_URL, "LEADLAWK__REDIS__PREFIX": prefix}
        done = await asyncio.to_thread(cli, "cancel", job_id, db=db, extra=env)
        events: list[dict[str, object]] = []
        async with asyncio.timeout(10):
            while not events:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    events.append(orjson.loads(message["data"]))
        return done.returncode, events
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # unannotated before redis-py 8.2
        await client.aclose()


async def test_a_queued_job_cancelled_from_the_cli_is_announced(tmp_path: Path, redis_prefix: str) -> None:
    db = await asyncio.to_thread(seed_ops_db, tmp_path)  # job-b is queued; no daemon runs
    returncode, events = await _cancel_from_cli(db, "job-b", redis_prefix)
    assert returncode == 0
    assert len(events) == 1
    event = events[0]
    assert (event["type"], event["job_id"], event["status"], event["error"]) == (
        "job.finished", "job-b", "cancelled", None)
