"""The deliveries' receiving end, offline: a webhook receiver that verifies signatures and an SMTP server.

``leadlawk replica inbox`` runs both. Every webhook POST (any path) is kept with its delivery id,
page and whether its ``X-LeadLawk-Signature`` verifies with the inbox's secret; every mail with its
sender, recipients, subject and attachments. ``GET /_received`` lists what arrived (``?raw=1``
adds bodies and attachments, base64), ``DELETE /_received`` forgets it.

Faults (``POST /_faults``, :mod:`.faults`' conventions): ``down`` (connections closed unanswered;
SMTP answers 421), ``slow`` (every answer delayed, ms), ``5xx``, ``429``, ``410`` and ``400`` (the
next N webhook requests, or ``true`` for all; SMTP answers 451, 452, 550 and 554 for them).
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import orjson
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.deliveries.signing import DELIVERY_HEADER, PAGE_HEADER, SIGNATURE_HEADER, verify
from leadlawk_daemon.replicas.faults import Fault, FaultSwitchboard, add_fault_routes, counted, flag, milliseconds
from leadlawk_daemon.replicas.foreground import serve_in_foreground

__all__ = ["DEFAULT_SECRET", "Inbox", "run_inbox_replica", "serve_inbox"]

DEFAULT_SECRET = "inbox-replica-secret"
MAX_BODY = 16 * 1024 * 1024
MAX_KEPT = 10_000

INBOX_FAULTS = (
    Fault("down", "true|false", "close every connection unanswered (SMTP: 421)", flag),
    Fault("slow", "milliseconds", "delay every answer", milliseconds),
    Fault("5xx", "true|N", "answer 503 (SMTP: 451)", counted),
    Fault("429", "true|N", "answer 429 Too Many Requests (SMTP: 452)", counted),
    Fault("410", "true|N", "answer 410 Gone (SMTP: 550)", counted),
    Fault("400", "true|N", "answer 400 Bad Request (SMTP: 554)", counted),
)


@dataclass
class Inbox:
    """What arrived, in order, and the faults being played."""

    secret: bytes = DEFAULT_SECRET.encode()
    clock: Clock = field(default_factory=MonotonicClock)
    faults: FaultSwitchboard = field(default_factory=lambda: FaultSwitchboard(INBOX_FAULTS))
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _keep(self, into: list[dict[str, Any]], item: dict[str, Any]) -> None:
        if len(into) >= MAX_KEPT:
            del into[0]
        into.append(item)
        self.arrived.set()

    def refusal(self) -> int | None:
        """The status a faulted request gets, None to answer normally (counted faults consumed)."""
        for name, status in (("5xx", 503), ("429", 429), ("410", 410), ("400", 400)):
            if self.faults.take(name):
                return status
        return None

    def delivered(self) -> dict[str, set[int]]:
        """Delivery id → the pages that arrived with a valid signature."""
        out: dict[str, set[int]] = {}
        for hook in self.webhooks:
            if hook["signature_valid"] and hook["status"] == 200:
                out.setdefault(hook["delivery_id"], set()).add(hook["page"])
        return out

    def listing(self, raw: bool) -> dict[str, Any]:
        def strip(item: dict[str, Any]) -> dict[str, Any]:
            return item if raw else {k: v for k, v in item.items() if k not in ("body", "raw", "attachments_data")}

        return {"webhooks": [strip(w) for w in self.webhooks], "emails": [strip(e) for e in self.emails]}


def _page(text: str) -> int:
    head = text.partition("/")[0]
    return int(head) if head.isdigit() and len(head) < 7 else 0


def create_inbox_app(inbox: Inbox) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def receive(request: web.Request) -> web.StreamResponse:
        slow = inbox.faults.get("slow")
        if slow:
            await inbox.clock.sleep(slow / 1000)
        if inbox.faults.get("down"):
            if request.transport is not None:
                request.transport.abort()  # as a receiver gone: the connection reset, nothing answered
            return web.Response(status=503)  # never sent: the connection is gone
        body = await request.read()
        status = inbox.refusal() or 200
        signature = request.headers.get(SIGNATURE_HEADER, "")
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            decoded = None
        inbox._keep(
            inbox.webhooks,
            {
                "path": request.path,
                "delivery_id": request.headers.get(DELIVERY_HEADER, "")[:100],
                "page": _page(request.headers.get(PAGE_HEADER, "")),
                "signature": signature[:200],
                "signature_valid": verify(signature, body, inbox.secret, now=inbox.clock.wall()),
                "status": status,
                "leads": len(decoded.get("leads") or []) if isinstance(decoded, dict) else None,
                "received_at": inbox.clock.wall(),
                "body": decoded,
            },
        )
        return web.json_response({"ok": status == 200}, status=status)

    async def received(request: web.Request) -> web.Response:
        return web.json_response(inbox.listing(request.query.get("raw") == "1"))

    async def forget(request: web.Request) -> web.Response:
        inbox.webhooks.clear()
        inbox.emails.clear()
        return web.json_response({"ok": True})

    app.router.add_get("/_received", received)
    app.router.add_delete("/_received", forget)
    add_fault_routes(app, inbox.faults)
    app.router.add_post("/{tail:.*}", receive)
    return app


class _MailHandler:
    """aiosmtpd's handler: keeps each message, or answers the fault being played."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        inbox = self.inbox
        if inbox.faults.get("down"):
            return "421 inbox replica down"
        for name, reply in (
            ("5xx", "451 try again later"),
            ("429", "452 too many"),
            ("410", "550 no such mailbox"),
            ("400", "554 refused"),
        ):
            if inbox.faults.take(name):
                return reply
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        attachments = []
        if isinstance(message, EmailMessage):
            for part in message.iter_attachments():
                payload = part.get_payload(decode=True)
                content = payload if isinstance(payload, bytes) else b""
                attachments.append(
                    {
                        "filename": part.get_filename(),
                        "content_type": part.get_content_type(),
                        "bytes": len(content),
                        "data": base64.b64encode(content).decode(),
                    }
                )
        inbox._keep(
            inbox.emails,
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(message.get("Subject", "")),
                "delivery_id": str(message.get("X-LeadLawk-Delivery", "")),
                "attachments": [{k: v for k, v in a.items() if k != "data"} for a in attachments],
                "attachments_data": attachments,
                "raw": data.decode("utf-8", "replace"),
                "received_at": inbox.clock.wall(),
            },
        )
        return "250 OK"


@asynccontextmanager
async def serve_inbox(
    host: str = "127.0.0.1",
    port: int = 0,
    smtp_port: int = 0,
    inbox: Inbox | None = None,
    *,
    smtp_tls: ssl.SSLContext | None = None,
    smtp_security: Literal["starttls", "tls"] = "starttls",
) -> AsyncIterator[tuple[Inbox, str, int]]:
    """Run the inbox (webhooks on ``port``, SMTP on ``smtp_port``; 0: any free port); yields it,
    the webhook base URL and the SMTP port. With ``smtp_tls``, SMTP requires STARTTLS, or speaks
    TLS from the first byte (``smtp_security="tls"``)."""
    inbox = inbox or Inbox()
    runner = web.AppRunner(create_inbox_app(inbox), handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    handler = _MailHandler(inbox)
    starttls = smtp_tls if smtp_security == "starttls" else None

    def session() -> SMTP:
        return SMTP(handler, hostname="inbox.replica", data_size_limit=MAX_BODY, tls_context=starttls,
                    require_starttls=starttls is not None)  # fmt: skip

    implicit = smtp_tls if smtp_security == "tls" else None
    smtp = await asyncio.get_running_loop().create_server(session, host, smtp_port, ssl=implicit)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        yield inbox, f"http://{host}:{bound}", smtp.sockets[0].getsockname()[1]
    finally:
        smtp.close()
        await runner.cleanup()
        await smtp.wait_closed()


async def run_inbox_replica(
    host: str = "127.0.0.1", port: int = 8094, smtp_port: int = 2525, secret: str = DEFAULT_SECRET
) -> None:
    """``leadlawk replica inbox``: serve until cancelled, printing where."""
    await serve_in_foreground(
        serve_inbox(host, port, smtp_port, Inbox(secret=secret.encode())),
        lambda served: (f"{served[1]} smtp://{host}:{served[2]}",),
    )
