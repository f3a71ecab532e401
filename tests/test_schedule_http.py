"""``/schedules`` over HTTP (private, like ``/jobs*``) and the console's schedules page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.console import mount_console
from leadlawk_daemon.console.sources import ConsoleSources, HealthView
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import create_app
from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.schedules.book import ScheduleBook
from leadlawk_daemon.schedules.http import mount_schedules
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.sql_store import SqlStore

Client = TestClient[Any, Any]
TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NIGHTLY = {"name": "Nightly plumbers", "spec": {"query": "plumbers", "location": "Omaha, NE", "limit": 20},
           "cron": "0 2 * * *", "tz": "America/Chicago"}  # fmt: skip


class _Sink:
    def publish(self, type: str, /, **context: object) -> None:
        pass


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Client, list[str]]]:
    async with open_store(f"sqlite:///{tmp_path / 's.db'}", migrate=True) as opened:
        assert isinstance(opened, SqlStore)
        store = opened
        settings = load_settings(environ={"LEADLAWK_ADMIN_TOKEN": TOKEN})
        metrics = Metrics(process=False)

        def admission(jobs: JobStore) -> Admission:
            return Admission(jobs, store, _Sink(), max_bytes=65_536, queue_size=None)

        woken: list[str] = []
        app = create_app(settings, Health(settings.resilience.health_check, settings.health, metrics), metrics)
        mount_console(app, ConsoleSources(
            settings=settings, jobs=None, bus=EventBus(_Sink()), store=lambda: store,  # type: ignore[arg-type]
            health=lambda: HealthView(ready=True, checks={}, live=True, live_reason=None), notify=lambda: None,
        ))  # fmt: skip
        mount_schedules(app, lambda: ScheduleBook(store, admission, max_bytes=65_536), lambda: woken.append("wake"))
        async with TestClient(TestServer(app)) as test_client:
            yield test_client, woken


async def test_schedules_are_private(client: tuple[Client, list[str]]) -> None:
    http, _ = client
    assert (await http.get("/schedules")).status == 401
    assert (await http.post("/schedules", json=NIGHTLY)).status == 401
    assert (await http.get("/schedules", headers=AUTH)).status == 200


async def test_a_schedule_is_added_read_changed_fired_and_removed(client: tuple[Client, list[str]]) -> None:
    http, woken = client
    added = await http.post("/schedules", json=NIGHTLY, headers=AUTH)
    assert added.status == 201
    body = await added.json()
    assert body["id"] == "nightly-plumbers"
    assert body["next_due_at"].endswith(("08:00:00+00:00", "07:00:00+00:00"))  # 02:00 in Chicago
    assert woken == ["wake"]
    assert (await http.post("/schedules", json=NIGHTLY, headers=AUTH)).status == 409

    bad = await http.post("/schedules", json={**NIGHTLY, "id": "x", "cron": "0 2 * *", "tz": "Mars/Olympus"},
                          headers=AUTH)  # fmt: skip
    assert bad.status == 400
    problems = (await bad.json())["problems"]
    assert any(p.startswith("cron: must have 5 fields") for p in problems)

    listed = (await (await http.get("/schedules", headers=AUTH)).json())["schedules"]
    assert [s["id"] for s in listed] == ["nightly-plumbers"]

    changed = await http.put("/schedules/nightly-plumbers", json={**NIGHTLY, "cron": "30 3 * * *"}, headers=AUTH)
    assert changed.status == 200
    assert (await changed.json())["cron"] == "30 3 * * *"
    assert (await http.put("/schedules/nobody", json=NIGHTLY, headers=AUTH)).status == 404

    paused = await http.post("/schedules/nightly-plumbers/pause", headers=AUTH)
    assert (await paused.json())["paused"] is True
    assert (await paused.json())["next_due_at"] is None
    resumed = await http.post("/schedules/nightly-plumbers/resume", headers=AUTH)
    assert (await resumed.json())["paused"] is False

    run = await http.post("/schedules/nightly-plumbers/run", headers=AUTH)
    assert run.status == 202
    job_id = (await run.json())["job_id"]
    assert job_id.startswith("s-nightly-plumbers-")
    shown = await (await http.get("/schedules/nightly-plumbers", headers=AUTH)).json()
    assert [(f["outcome"], f["job_id"]) for f in shown["last_fires"]] == [("fired", job_id)]

    assert (await http.delete("/schedules/nightly-plumbers", headers=AUTH)).status == 200
    assert (await http.get("/schedules/nightly-plumbers", headers=AUTH)).status == 404
    assert (await http.delete("/schedules/nightly-plumbers", headers=AUTH)).status == 404


async def test_the_console_page_shows_next_fire_times_and_last_runs(client: tuple[Client, list[str]]) -> None:
    http, _ = client
    page = await (await http.get("/console/schedules", headers=AUTH)).text()
    assert "No schedules" in page
    await http.post("/schedules", json={**NIGHTLY, "name": "<b>Nightly</b>"}, headers=AUTH)
    await http.post("/schedules/b-nightly-b/run", headers=AUTH)
    page = await (await http.get("/console/schedules", headers=AUTH)).text()
    assert "&lt;b&gt;Nightly&lt;/b&gt;" in page, "a name is shown as text"
    assert "02:00 C" in page  # CST or CDT, as the date falls
    assert 'data-outcome="fired"' in page
    assert '<a href="/console/jobs/s-b-nightly-b-' in page
