"""Site reports in the store: the ``sites`` row of a report, and its export columns.

Both backends write the same values (JSON columns as Python lists and dicts; each backend
encodes them its way) and read them back through :func:`site_export_values`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from leadlawk_daemon.sites.report import SiteReport

__all__ = ["JSON_FIELDS", "SITE_EXPORT_COLUMNS", "SITE_FIELDS", "site_export_values", "site_values"]

SITE_FIELDS: tuple[str, ...] = (
    "site", "url", "status", "reason", "final_url", "redirects", "http_status", "https", "cert_valid",
    "http_to_https", "mobile_viewport", "cms", "generator", "copyright_year", "last_modified", "page_bytes",
    "truncated", "server", "parked", "emails", "rejected_emails", "phones", "socials", "contact_form", "checked_at",
    "capped", "email_verdicts", "primary_email", "tech",
)
JSON_FIELDS = frozenset({
    "redirects", "emails", "rejected_emails", "phones", "socials", "capped", "email_verdicts", "tech",
})

# What ``leadlawk export`` adds to each lead: its site's verdict, contacts and facts; empty when unread.
SITE_EXPORT_COLUMNS: tuple[str, ...] = (
    "site_status", "site_reason", "site_emails", "site_phones", "site_socials", "site_contact_form",
    "site_https", "site_cert_valid", "site_http_to_https", "site_mobile_viewport", "site_cms", "site_tech",
    "site_copyright_year", "site_last_modified", "site_page_bytes", "site_server", "site_final_url",
    "site_checked_at", "primary_email", "primary_email_status", "site_email_verdicts",
)
_EXPORTED = {f"site_{name}": name for name in (
    "status", "reason", "contact_form", "https", "cert_valid", "http_to_https", "mobile_viewport", "cms",
    "copyright_year", "last_modified", "page_bytes", "server", "final_url", "checked_at")}
_INT32 = 2**31 - 1


def site_values(report: SiteReport, checked_at: datetime) -> dict[str, Any]:
    """The ``sites`` row of ``report``, every field of :data:`SITE_FIELDS` in Python types."""
    values = {name: getattr(report, name, None) for name in SITE_FIELDS}
    values["status"] = report.status.value
    values["last_modified"] = date.fromisoformat(report.last_modified) if report.last_modified else None
    values["page_bytes"] = min(report.page_bytes, _INT32) if report.page_bytes is not None else None
    values["checked_at"] = checked_at
    for name in ("reason", "final_url", "generator", "server", "url"):
        text = values[name]
        if isinstance(text, str):
            values[name] = text[:2000]  # untrusted text from the site: bounded
    return values


def _listed(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def site_export_values(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The export columns of one ``sites`` row (None: the lead's site was not read)."""
    out: dict[str, Any] = dict.fromkeys(SITE_EXPORT_COLUMNS)
    if row is None:
        return out
    for column, name in _EXPORTED.items():
        value = row.get(name)
        if name in ("https", "cert_valid", "http_to_https", "mobile_viewport", "contact_form") and value is not None:
            value = bool(value)
        out[column] = value.isoformat() if isinstance(value, datetime | date) else value
    emails: Sequence[str] = _listed(row.get("emails")) or []
    phones: Sequence[str] = _listed(row.get("phones")) or []
    socials: Mapping[str, str] = _listed(row.get("socials")) or {}
    out["site_emails"] = "; ".join(emails) or None
    out["site_phones"] = "; ".join(phones) or None
    out["site_socials"] = "; ".join(socials.values()) or None
    tech: Sequence[str] = _listed(row.get("tech")) or []
    out["site_tech"] = "; ".join(tech) or None  # slugs (docs/site-enrichment.md), as site_emails lists addresses
    # Email verdicts (docs/email-verdicts.md): the list as stored (CSV cells carry it as JSON text).
    verdicts: Sequence[Mapping[str, Any]] = _listed(row.get("email_verdicts")) or []
    primary = row.get("primary_email")
    out["primary_email"] = primary
    out["primary_email_status"] = next((v.get("status") for v in verdicts if v.get("email") == primary), None)
    out["site_email_verdicts"] = list(verdicts) or None
    return out
