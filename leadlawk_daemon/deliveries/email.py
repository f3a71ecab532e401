"""The ``email`` destination: a short text and HTML body (the summary and the top leads), and the full
list attached as CSV or XLSX, sent with aiosmtplib over STARTTLS or TLS.

Every text in the body comes from outside (business names, websites): the HTML is escaped, the
attachment goes through the export's spreadsheet neutralisation.
"""

from __future__ import annotations

import html
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from leadlawk_daemon.deliveries.digest import Digest, file_bytes_async
from leadlawk_daemon.deliveries.errors import DeliveryRejected, DestinationDown
from leadlawk_daemon.settings import EmailDestination

__all__ = ["EmailSender", "digest_message"]

_SUBTYPE = {"csv": ("text", "csv"), "xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")}
_SHOWN = ("name", "phone", "website", "rating", "review_count", "address")


def _summary_lines(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        f"Job {summary.get('job_id')} ({summary.get('status')}): {summary.get('query')} in {summary.get('location')}",
        f"found {summary.get('found')}, qualified {summary.get('qualified')}, new {summary.get('new')}, "
        f"failed {summary.get('failed')}",
    ]
    if summary.get("maps_view") not in (None, "full"):
        lines.append(f"Google Maps showed its limited view ({summary.get('maps_view')})")
    skipped = summary.get("filters_not_applied")
    if isinstance(skipped, Mapping) and skipped.get("count"):
        lines.append(f"{skipped['count']} lead(s) whose filters could not be applied: {skipped.get('reason')}")
    if summary.get("error"):
        lines.append(f"error: {summary['error']}")
    return lines


def _lead_line(row: Mapping[str, Any]) -> str:
    return " | ".join(str(row.get(k)) for k in _SHOWN if row.get(k) not in (None, ""))


async def digest_message(name: str, config: EmailDestination, digest: Digest) -> EmailMessage:
    summary = digest.summary
    top: Sequence[Mapping[str, Any]] = digest.rows[: config.top]
    text = [*_summary_lines(summary), ""]
    text += [f"{i}. {_lead_line(row)}" for i, row in enumerate(top, start=1)]
    if len(digest.rows) > len(top):
        text.append(f"… and {len(digest.rows) - len(top)} more in the attachment")
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Subject"] = f"LeadLawk: {summary.get('new')} new lead(s) for {str(summary.get('query'))[:80]}"
    message["X-LeadLawk-Delivery"] = digest.delivery.id
    message.set_content("\n".join(text))
    items = "".join(f"<li>{html.escape(_lead_line(row))}</li>" for row in top)
    head = "".join(f"<p>{html.escape(line)}</p>" for line in _summary_lines(summary))
    message.add_alternative(f"<html><body>{head}<ol>{items}</ol></body></html>", subtype="html")
    maintype, subtype = _SUBTYPE[config.attach]
    message.add_attachment(
        await file_bytes_async(digest.rows, config.attach),
        maintype=maintype,
        subtype=subtype,
        filename=f"leads-{digest.delivery.job_id}.{config.attach}",
    )
    return message


class EmailSender:
    def __init__(self, name: str, config: EmailDestination, *, password: str | None, timeout: float) -> None:
        self.name = name
        self.config = config
        self.password = password
        self.timeout = timeout
        # The system's trust store, and the destination's own CA when it names one.
        self.tls_context: ssl.SSLContext | None = (
            None if config.ca_file is None else ssl.create_default_context(cafile=config.ca_file)
        )

    async def aclose(self) -> None:
        return None

    async def send(self, digest: Digest) -> None:
        c = self.config
        message = await digest_message(self.name, c, digest)
        try:
            await aiosmtplib.send(
                message,
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=self.password,
                use_tls=c.security == "tls",
                start_tls=c.security == "starttls",
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is the server's "try later" (greylisting, busy): an outage. 5xx refuses this mail.
            if 400 <= exc.code < 500:
                raise DestinationDown(f"SMTP {exc.code}: {str(exc.message)[:200]}") from None
            raise DeliveryRejected(f"SMTP {exc.code}: {str(exc.message)[:200]}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DestinationDown(f"{type(exc).__name__}: {str(exc)[:200]}") from None
