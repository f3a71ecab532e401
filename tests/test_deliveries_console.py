"""The deliveries on the console and over ``/deliveries``: listed, shown, replayed; private."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from actors.clock import FakeClock
from leadlawk_daemon.console import mount_console
from leadlawk_daemon.console.sources import ConsoleSources, HealthView
from leadlawk_daemon.deliveries.http import DeliveriesSource, mount_deliveries
from leadlawk_daemon.deliveries.ledger import delivery_id, ledger_of
from leadlawk_daemon.deliveries.service import DeliveryService
from leadlawk_daemon.dependencies import Dependencies
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import create_app
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store, open_store
from tests.support.deliveries import ENV, Quiet, delivery_settings, finished_job


def _app(settings: Settings, store: Store, woken: list[int]) -> web.Application:
    metrics = Metrics(process=False)
    app = create_app(settings, Health(settings.resilience.health_check, settings.health, metrics), metrics)
    health = HealthView(ready=True, checks={}, live=True, live_reason=None)
    mount_console(
        app,
        ConsoleSources(
            settings=settings,
            jobs=None,  # type: ignore[arg-type]  # the deliveries pages read no job
            bus=EventBus(Quiet()),
            store=lambda: store,
            health=lambda: health,
            notify=lambda: woken.append(1),
        ),
    )
    mount_deliveries(app, DeliveriesSource(store=lambda: store, wake=lambda: woken.append(1)))
    return app


async def test_deliveries_are_listed_shown_and_replayed_over_http_and_on_the_console(tmp_path: Path) -> None:
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"}
    settings = delivery_settings(tmp_path, {"hook": hook})
    woken: list[int] = []
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}", clock=FakeClock(), migrate=True) as store:
        await finished_job(store, "shown", [1, 2], notify=["hook"])
        metrics, sink = Metrics(process=False), Quiet()
        service = DeliveryService(
            settings, store, EventBus(sink), metrics, FakeClock(), Dependencies(metrics, sink), secrets=ENV
        )
        await service.make("shown")
        one = delivery_id("shown", "hook")
        await ledger_of(store).dead(one, "answered 410")
        async with TestClient(TestServer(_app(settings, store, woken))) as client:
            listed = await (await client.get("/deliveries?status=dead")).json()
            assert [(d["id"], d["status"], d["leads"]) for d in listed["deliveries"]] == [(one, "dead", 2)]
            assert (await client.get("/deliveries?status=bogus")).status == 400
            shown = await (await client.get(f"/deliveries/{one}")).json()
            assert shown["last_error"] == "answered 410"
            assert len(shown["place_ids"]) == 2
            assert (await client.get("/deliveries/nope")).status == 404
            page = await client.get("/console/deliveries")
            assert page.status == 200
            text = await page.text()
            assert one in text
            assert "answered 410" in text
            assert f'action="/console/deliveries/{one}/replay"' in text
            replayed = await client.post(f"/deliveries/{one}/replay")
            assert replayed.status == 202
            assert woken
            after = await ledger_of(store).get(one)
            assert after is not None
            assert after.status == "pending"
            # Private: a client that is not local (a forwarded one) is refused, as for /jobs.
            refused = await client.get("/deliveries", headers={"X-Forwarded-For": "203.0.113.9"})
            assert refused.status == 403


class _Submitted:
    """A jobs API that keeps what it is given."""

    def __init__(self) -> None:
        self.specs: list[JobSpec] = []

    async def submit(self, spec: JobSpec) -> bool:
        self.specs.append(spec)
        return True

    async def get(self, job_id: str) -> Mapping[str, Any] | None:
        return None

    async def list(self, status: str | None) -> list[Mapping[str, Any]]:
        return []

    async def cancel(self, job_id: str) -> bool:
        return False


async def test_post_jobs_takes_notify_naming_configured_destinations_only(tmp_path: Path) -> None:
    hook = {"type": "webhook", "url": "https://hooks.example.com/x", "secret_env": "HOOK_SECRET"}
    settings = delivery_settings(tmp_path, {"sales-webhook": hook})
    metrics = Metrics(process=False)
    jobs = _Submitted()
    app = create_app(settings, Health(settings.resilience.health_check, settings.health, metrics), metrics, jobs=jobs)
    async with TestClient(TestServer(app)) as client:
        refused = await client.post("/jobs", json={"query": "plumbers", "notify": ["sales-webhook", "sales-mail"]})
        assert refused.status == 400
        problems = (await refused.json())["problems"]
        assert problems == [
            'notify[1]: no destination of that name is configured (configured: sales-webhook) (got "sales-mail")'
        ]
        accepted = await client.post("/jobs", json={"query": "plumbers", "notify": ["sales-webhook"]})
        assert accepted.status == 202
    (spec,) = jobs.specs
    assert spec.notify == ("sales-webhook",)
    assert spec.to_dict()["notify"] == ["sales-webhook"]
