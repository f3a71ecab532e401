"""Digests sent to the inbox replica: a webhook down for five minutes, a refusal dead-lettered and
replayed, an email read back with its attachment, a file drop never seen half-written.

Time is injected: the service, its breakers and backoff and the inbox's signature check run on one
FakeClock, moved on only while the service waits (its loops all asleep), so five minutes of
outage take well under a second of the test's own time; requests, the store and SMTP are real.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import ssl
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp import web

from actors.clock import FakeClock
from leadlawk_daemon.control import ControlError
from leadlawk_daemon.deliveries.command import replay_delivery
from leadlawk_daemon.deliveries.filedrop import write_atomically
from leadlawk_daemon.deliveries.ledger import Delivery, delivery_id, ledger_of
from leadlawk_daemon.deliveries.service import DeliveryService, destination_breaker
from leadlawk_daemon.health import Health
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.replicas.inbox import Inbox, serve_inbox
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store, StoreUnavailable, open_store
from leadlawk_daemon.store.sql_store import SqlStore
from tests.support.deliveries import SECRET, delivery_settings, finished_job, listing, running_service
from tests.waiting import eventually

# The service's loops that sleep on the clock while it has nothing to do: the sweep and the sender.
IDLE_SLEEPERS = 2


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def inbox(clock: FakeClock) -> AsyncIterator[tuple[Inbox, str, int]]:
    async with serve_inbox(inbox=Inbox(secret=SECRET.encode(), clock=clock)) as served:
        yield served


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path / 'd.db'}", clock=clock, migrate=True) as opened:
        yield opened


async def run_for(clock: FakeClock, seconds: float, step: float = 5.0) -> None:
    """Move the clock ``seconds`` on, ``step`` at a time, each step once the service waits."""
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        await clock.wait_for_sleepers(IDLE_SLEEPERS)
        await clock.advance(step)


async def until_status(service: DeliveryService, clock: FakeClock, one: str, status: str) -> Delivery:
    """The delivery once it has ``status``, the clock moved on a second at a time while it has not."""

    async def reached() -> Delivery | None:
        found = await service.ledger.get(one)
        if found is not None and found.status == status:
            return found
        await run_for(clock, 1.0, 1.0)
        return None

    return await eventually(reached, within=30, what=f"delivery {one} becoming {status}")


def hook_settings(tmp_path: Path, url: str, **deliveries: object) -> Settings:
    hook = {"type": "webhook", "url": f"{url}/hooks/sales", "secret_env": "HOOK_SECRET"}
    return delivery_settings(tmp_path, {"sales": hook}, **deliveries)


async def test_a_webhook_down_for_five_minutes_gets_the_delivery_once_signed_when_it_is_back(
    tmp_path: Path, store: Store, clock: FakeClock, inbox: tuple[Inbox, str, int]
) -> None:
    box, url, _ = inbox
    box.faults.replace({"down": True})
    metrics = Metrics(process=False)
    async with running_service(hook_settings(tmp_path, url), store, clock, metrics) as service:
        await finished_job(store, "night-1", [1, 2, 3], notify=["sales"])
        await service.make("night-1")
        one = delivery_id("night-1", "sales")
        await run_for(clock, 300.0)  # five minutes of a receiver that closes every connection
        during = await service.ledger.get(one)
        assert during is not None
        assert during.status == "pending"  # waiting, not failed: an outage is nobody's failure
        assert during.attempts >= 4
        assert box.delivered() == {}
        assert (
            metrics.registry.get_sample_value(
                "leadlawk_deliveries_total", {"destination": "sales", "outcome": "retried"}
            )
            == during.attempts
        )
        # The destination is a dependency: its breaker opened (and is not closed while it is down).
        assert service.dependencies[destination_breaker("sales")].down
        # /health/ready: the destination is listed, the daemon still ready, a note says what waits.
        settings = service.settings
        health = Health(settings.resilience.health_check, settings.health, metrics)
        health.condition_sets.append(service.dependencies.conditions)
        health.notes["destinations"] = service.note
        ready, checks = health.ready()
        assert ready
        assert checks[destination_breaker("sales")]["ok"]
        assert "sales" in checks["destinations"]["degraded"]

        box.faults.clear()
        done = await until_status(service, clock, one, "delivered")
    hooks = [h for h in box.webhooks if h["status"] == 200]
    assert len(hooks) == 1, "the delivery arrived more than once"
    assert hooks[0]["delivery_id"] == one
    assert hooks[0]["signature_valid"]
    body = hooks[0]["body"]
    assert (body["page"], body["pages"]) == (1, 1)
    assert [lead["place_id"] for lead in body["leads"]] == [listing(n).place_id for n in (1, 2, 3)]
    assert body["summary"]["new"] == 3
    assert body["summary"]["found"] == 3
    assert done.delivered_at is not None
    assert not service.dependencies[destination_breaker("sales")].down
    assert service.note() is None
    # Its latency is the wait from the job's end: the five minutes of outage, and a little more.
    labels = {"destination": "sales"}
    assert metrics.registry.get_sample_value("leadlawk_delivery_latency_seconds_count", labels) == 1
    waited = metrics.registry.get_sample_value("leadlawk_delivery_latency_seconds_sum", labels)
    assert waited is not None
    assert 300 <= waited < 400


async def test_a_refused_delivery_is_dead_lettered_and_a_replay_delivers_it(
    tmp_path: Path, store: Store, clock: FakeClock, inbox: tuple[Inbox, str, int]
) -> None:
    box, url, _ = inbox
    box.faults.replace({"400": 1})
    settings = hook_settings(tmp_path, url)
    async with running_service(settings, store, clock) as service:
        await finished_job(store, "refused", [4, 5], notify=["sales"])
        await service.make("refused")
        one = delivery_id("refused", "sales")
        dead = await until_status(service, clock, one, "dead")
        assert dead.last_error == "answered 400"
        (letter,) = await store.list_dead_letters(kind="delivery")
        assert one in letter.payload
        assert "answered 400" in letter.reason
        assert box.delivered() == {}
        # `leadlawk deliveries replay ID` (here on the same store) sends it again.
        out = io.StringIO()
        assert await replay_delivery(store, one, out) == 0
        assert "replayed" in out.getvalue()
        service.wake()
        await until_status(service, clock, one, "delivered")
        with pytest.raises(ControlError, match="no delivery"):
            await replay_delivery(store, "d-unknown", out)
    assert box.delivered() == {one: {1}}


async def test_a_large_digest_is_paged_each_page_signed(
    tmp_path: Path, store: Store, clock: FakeClock, inbox: tuple[Inbox, str, int]
) -> None:
    box, url, _ = inbox
    async with running_service(hook_settings(tmp_path, url, page_size=4), store, clock) as service:
        await finished_job(store, "big", list(range(10)), notify=["sales"])
        await service.make("big")
        await until_status(service, clock, delivery_id("big", "sales"), "delivered")
    pages = sorted((h["body"]["page"], h["body"]["pages"], len(h["body"]["leads"])) for h in box.webhooks)
    assert pages == [(1, 3, 4), (2, 3, 4), (3, 3, 2)]
    assert all(h["signature_valid"] for h in box.webhooks)


async def test_an_email_digest_arrives_with_its_attachment(
    tmp_path: Path, store: Store, clock: FakeClock, inbox: tuple[Inbox, str, int]
) -> None:
    box, _, smtp_port = inbox
    mail = {
        "type": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
        "sender": "leads@leadlawk.test", "to": ["sales@example.test"], "attach": "xlsx", "top": 2,
    }  # fmt: skip
    settings = delivery_settings(tmp_path, {"mail": mail})
    async with running_service(settings, store, clock) as service:
        await finished_job(store, "mailed", [7, 8, 9], notify=["mail"])
        await service.make("mailed")
        await until_status(service, clock, delivery_id("mailed", "mail"), "delivered")
    (message,) = box.emails
    assert message["to"] == ["sales@example.test"]
    assert message["delivery_id"] == delivery_id("mailed", "mail")
    assert "Business 7" in message["raw"]
    assert "and 1 more in the attachment" in message["raw"]
    (attachment,) = message["attachments_data"]
    assert attachment["filename"] == "leads-mailed.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(base64.b64decode(attachment["data"]))).active
    assert sheet is not None
    names = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert names == ["Business 7", "Business 8", "Business 9"]


async def test_a_file_drop_is_never_seen_half_written(tmp_path: Path) -> None:
    # A reader polling the directory the whole time, as a sync tool would, while large digests are
    # written into it: every file it can open is whole (its last row there, the row count right).
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = 4000
    text = "place_id,name\n" + "".join(f"ChIJ{i},Business {i}\n" for i in range(rows))
    stop = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            for path in drop.glob("leads-*.csv"):  # the sender's temporary files are dot files
                try:
                    content = path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    continue
                seen.append(len(list(csv.reader(io.StringIO(content)))) - 1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(40):
            await asyncio.to_thread(write_atomically, drop, f"leads-{n % 3}.csv", text.encode())
    finally:
        stop.set()
        thread.join()
    assert seen, "the reader never saw a file"
    assert set(seen) == {rows}
    assert sorted(p.name for p in drop.iterdir()) == ["leads-0.csv", "leads-1.csv", "leads-2.csv"]


async def test_the_file_destination_writes_the_digest_in_its_format(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = delivery_settings(tmp_path, {"drop": {"type": "file", "directory": str(drop), "format": "csv"}})
    async with running_service(settings, store, clock) as service:
        await finished_job(store, "filed", [1, 2], notify=["drop"])
        await service.make("filed")
        one = delivery_id("filed", "drop")
        await until_status(service, clock, one, "delivered")
    (written,) = drop.iterdir()
    assert written.name == f"leads-{one}.csv"
    read = list(csv.DictReader(io.StringIO(written.read_text(encoding="utf-8"))))
    assert [r["name"] for r in read] == ["Business 1", "Business 2"]
    assert ledger_of(store) is not None


async def test_a_redirect_is_not_followed_and_a_refused_address_is_never_sent_to(
    tmp_path: Path, store: Store, clock: FakeClock, inbox: tuple[Inbox, str, int]
) -> None:
    box, url, _ = inbox

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{url}/hooks/elsewhere")

    app = web.Application()
    app.router.add_post("/{tail:.*}", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        redirecting = {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret_env": "HOOK_SECRET"}
        # Without sites.allowed_networks, loopback is refused, as any address built from data would be.
        metadata = {"type": "webhook", "url": "http://169.254.169.254/latest", "secret_env": "HOOK_SECRET"}
        settings = delivery_settings(tmp_path, {"moved": redirecting, "metadata": metadata})
        async with running_service(settings, store, clock) as service:
            await finished_job(store, "sent-astray", [1], notify=["moved", "metadata"])
            await service.make("sent-astray")
            moved_one = await until_status(service, clock, delivery_id("sent-astray", "moved"), "dead")
            refused = await until_status(service, clock, delivery_id("sent-astray", "metadata"), "dead")
    finally:
        await runner.cleanup()
    assert moved_one.last_error is not None
    assert "redirect" in moved_one.last_error
    assert refused.last_error is not None
    assert "refused" in refused.last_error
    assert "link-local" in refused.last_error
    assert box.webhooks == []  # the redirect's target never got it


async def test_two_daemons_sending_from_one_postgresql_deliver_each_digest_once(
    tmp_path: Path, fresh_pg: str, inbox: tuple[Inbox, str, int]
) -> None:
    box, url, _ = inbox
    clock = FakeClock()
    box.clock = clock
    settings = hook_settings(tmp_path, url, concurrency=8)
    async with open_store(fresh_pg, clock=clock, migrate=True) as store:
        for j in range(30):
            await finished_job(store, f"shared-{j}", [j], notify=["sales"])
        async with running_service(settings, store, clock) as one, running_service(settings, store, clock) as two:
            for j in range(30):
                await (one if j % 2 else two).make(f"shared-{j}")
                await (two if j % 2 else one).make(f"shared-{j}")  # the other daemon's sweep, at once

            async def all_delivered() -> bool:
                if len(box.delivered()) == 30:
                    return True
                await clock.wait_for_sleepers(2 * IDLE_SLEEPERS)
                await clock.advance(1.0)
                return False

            await eventually(all_delivered, within=60, what="all 30 digests delivered")
    arrived = [h["delivery_id"] for h in box.webhooks if h["status"] == 200]
    assert len(arrived) == 30
    assert len(set(arrived)) == 30, "a digest was sent by both daemons"


async def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the ``openssl`` command, as the sites replica makes its own)."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await made.wait() == 0
    return key, cert


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_email_digest_goes_over_starttls_or_tls_trusting_the_destinations_ca(
    tmp_path: Path, store: Store, clock: FakeClock, security: str
) -> None:
    key, cert = await _certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    box = Inbox(secret=SECRET.encode(), clock=clock)
    async with serve_inbox(inbox=box, smtp_tls=server_tls, smtp_security=security) as (_, _, smtp_port):  # type: ignore[arg-type]
        mail = {
            "type": "email", "host": "127.0.0.1", "port": smtp_port, "security": security, "ca_file": str(cert),
            "sender": "leads@leadlawk.test", "to": ["sales@example.test"], "attach": "csv",
        }  # fmt: skip
        settings = delivery_settings(tmp_path, {"mail": mail})
        async with running_service(settings, store, clock) as service:
            await finished_job(store, "sealed", [5], notify=["mail"])
            await service.make("sealed")
            await until_status(service, clock, delivery_id("sealed", "mail"), "delivered")
    (message,) = box.emails
    (attachment,) = message["attachments_data"]
    assert attachment["filename"] == "leads-sealed.csv"
    assert "Business 5" in base64.b64decode(attachment["data"]).decode()


class _Outage:
    """The store's database behind a switch: while ``down``, every session is refused as unreachable."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0
        self.dialect = inner.dialect
        self.write_parallelism = inner.write_parallelism

    def _guard(self, session: Any) -> Any:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("the database is down (test)")
        return session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Any]:
        async with self.inner.reading() as session:
            yield self._guard(session)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Any]:
        async with self.inner.writing() as session:
            yield self._guard(session)


async def test_a_job_finished_while_the_database_is_down_gets_its_digest_once_it_is_back(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    await finished_job(store, "through-outage", [1, 2], notify=["drop"])
    assert isinstance(store, SqlStore)
    outage = _Outage(store.database)
    store.database = outage  # type: ignore[assignment]
    settings = delivery_settings(tmp_path, {"drop": {"type": "file", "directory": str(drop)}})
    outage.down = True
    async with running_service(settings, store, clock) as service:
        service.bus.publish("job.finished", job_id="through-outage", status="succeeded")

        async def refused_again_and_again() -> bool:  # the make, the sweep and the sender back off
            await clock.advance(0.5)
            return outage.refused > 5

        await eventually(refused_again_and_again, within=20, what="the database refused several tries")
        assert list(drop.iterdir()) == []
        outage.down = False
        one = delivery_id("through-outage", "drop")

        async def delivered() -> bool:
            await clock.advance(0.5)
            found = await service.ledger.get(one)
            return found is not None and found.status == "delivered"

        await eventually(delivered, within=20, what="the digest delivered after the outage")
    assert [p.name for p in drop.iterdir()] == [f"leads-{one}.csv"]


async def test_a_destination_back_gets_its_whole_backlog_at_once_not_each_at_its_own_retry(
    tmp_path: Path, store: Store, clock: FakeClock, inbox: tuple[Inbox, str, int]
) -> None:
    box, url, _ = inbox
    box.faults.replace({"5xx": True})
    async with running_service(hook_settings(tmp_path, url), store, clock) as service:
        for j in range(8):
            await finished_job(store, f"backlog-{j}", [j], notify=["sales"])
            await service.make(f"backlog-{j}")
        await run_for(clock, 120.0)  # retries spread up to retry_max (30 s) apart
        assert box.delivered() == {}
        box.faults.clear()
        await until_status(service, clock, delivery_id("backlog-0", "sales"), "delivered")
        for j in range(8):
            await until_status(service, clock, delivery_id(f"backlog-{j}", "sales"), "delivered")
    times = sorted(h["received_at"] for h in box.webhooks if h["status"] == 200)
    assert len(times) == 8
    assert times[-1] - times[0] < 5.0, f"the backlog drained over {times[-1] - times[0]:.0f} s"
