"""The console's download menu offers each CRM's import file (docs/crm-export.md): the same file
``leadlawk export --crm`` writes, narrowed by the table's filter."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.console import mount_console
from leadlawk_daemon.console.sources import ConsoleSources, HealthView
from leadlawk_daemon.crm import CRM_FORMATS, render_crm_csv
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import create_app
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import Store, open_store
from tests.test_crm import seed_chain_job

Client = TestClient[Any, Any]


class _Jobs:
    """The jobs API over the store: what GET /jobs/ID answers."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, job_id: str) -> dict[str, object] | None:
        job = await self.store.get_job(job_id)
        return None if job is None else job.to_dict()

    async def list(self, status: str | None) -> list[dict[str, object]]:
        return []


class _Sink:
    def publish(self, type: str, /, **context: object) -> None:
        pass


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[Client, Store]]:
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}", migrate=True) as store:
        await seed_chain_job(store)
        await store.regroup_companies()
        settings = load_settings(environ={})
        metrics = Metrics(process=False)
        jobs = _Jobs(store)
        app = create_app(settings, Health(settings.resilience.health_check, settings.health, metrics), metrics,
                         jobs=jobs)  # type: ignore[arg-type]  # fmt: skip
        mount_console(app, ConsoleSources(
            settings=settings, jobs=jobs, bus=EventBus(_Sink()), store=lambda: store,  # type: ignore[arg-type]
            health=lambda: HealthView(ready=True, checks={}, live=True, live_reason=None), notify=lambda: None,
        ))  # fmt: skip
        async with TestClient(TestServer(app)) as client:
            yield client, store


async def test_the_job_page_offers_each_crms_file_and_each_is_the_export(console: tuple[Client, Store]) -> None:
    client, store = console
    page = await (await client.get("/console/jobs/job-c")).text()
    assert page.count("chain of 2") == 2  # each Acme branch says so; Beta Drains does not
    for crm in CRM_FORMATS:
        assert f'href="/console/jobs/job-c/crm/{crm}.csv?' in page
        response = await client.get(f"/console/jobs/job-c/crm/{crm}.csv")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"] == f'attachment; filename="{crm}-job-c.csv"'
        body = await response.text()
        assert body == render_crm_csv(CRM_FORMATS[crm], await store.lead_rows_for_export("job-c"))
    hubspot = list(csv.DictReader(io.StringIO(await (await client.get("/console/jobs/job-c/crm/hubspot.csv")).text())))
    assert [r["Company name"] for r in hubspot] == ["Acme Plumbing", "Beta Drains"]  # the chain is one company
    qualified = await client.get("/console/jobs/job-c/crm/salesforce.csv?qualified=yes")
    assert [r["Company"] for r in csv.DictReader(io.StringIO(await qualified.text()))] == ["Acme Plumbing"] * 2
    assert (await client.get("/console/jobs/job-c/crm/zoho.csv")).status == 404
    assert (await client.get("/console/jobs/nope/crm/hubspot.csv")).status == 404


async def test_the_submit_form_offers_the_chain_filters(console: tuple[Client, Store]) -> None:
    client, _store = console
    page = await client.get("/")
    assert page.status == 200
    text = await page.text()
    assert 'name="independent_only"' in text
    assert 'name="max_branches"' in text
