"""What the site client learned about one website: its contacts and the facts that sell a new one.

A site that cannot be read is described here too (``status`` dead, blocked or parked, with its
``reason``): for a web agency that is the strongest lead, not an error.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["CMS_NAMES", "SiteReport", "SiteStatus", "known_site_tech", "tech_slug"]

CMS_NAMES = ("wix", "squarespace", "godaddy", "wordpress", "weebly", "shopify", "other", "handwritten")
"""The builders the console offers first. ``cms`` is any CMS, builder or shop system the
fingerprints know (sites/tech.py: its slug, ``joomla``, ``woocommerce``…); ``other``: a generator
meta tag that no fingerprint recognises; ``handwritten``: no fingerprint and no generator."""


def tech_slug(name: str) -> str:
    """A technology's stable id in reports and filters: ``WooCommerce`` → ``woocommerce``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@functools.cache
def known_site_tech() -> frozenset[str]:
    """Every name ``site_cms`` and ``site_tech`` can hold (what ``site.built_with`` accepts): the
    slugs of the shipped fingerprints (sites/fingerprints/, read as plain data), and CMS_NAMES."""
    names = set(CMS_NAMES)
    for data in ("technologies.json", "local.json"):
        found = json.loads((Path(__file__).with_name("fingerprints") / data).read_text(encoding="utf-8"))
        names.update(tech_slug(name) for name in found["technologies"])
    return frozenset(names)


class SiteStatus(StrEnum):
    OK = "ok"
    DEAD = "dead"  # DNS failure, refused, timeout, 5xx/404, an invalid certificate, redirects without end
    PARKED = "parked"  # a parking page, or a "coming soon" placeholder
    BLOCKED = "blocked"  # robots.txt forbids us, or the site refuses robots (401/403/429)
    # The page could not be read within its budget (CPU time in the extraction worker): a fact
    # about the page ("too slow"), never an outage of ours.
    UNREADABLE = "unreadable"
    # The site, or a hop on its way, is an address the egress policy refuses (loopback, private,
    # link-local, metadata…): nothing was sent there. A fact about the lead, never an outage.
    BLOCKED_BY_POLICY = "blocked_by_policy"


@dataclass(slots=True)
class SiteReport:
    site: str  # the origin's key: host without www.
    url: str  # the URL asked for
    status: SiteStatus
    reason: str | None = None
    final_url: str | None = None
    redirects: list[str] = field(default_factory=list)
    http_status: int | None = None
    https: bool | None = None
    cert_valid: bool | None = None
    http_to_https: bool | None = None
    mobile_viewport: bool | None = None
    cms: str | None = None
    tech: list[str] = field(default_factory=list)  # every technology recognised: cms, builder, shop, analytics, booking
    generator: str | None = None
    copyright_year: int | None = None
    last_modified: str | None = None  # ISO 8601 date, from the home page's Last-Modified
    page_bytes: int | None = None
    truncated: bool = False  # the home page passed sites.max_bytes; what followed was not read
    server: str | None = None
    parked: str | None = None
    emails: list[str] = field(default_factory=list)
    rejected_emails: dict[str, str] = field(default_factory=dict)  # address → the junk rule
    phones: list[str] = field(default_factory=list)
    socials: dict[str, str] = field(default_factory=dict)
    contact_form: bool | None = None
    pages: list[str] = field(default_factory=list)  # every page read, home first
    # Contacts past the per-page cap: kind ("emails", "phones", …) → how many were found in all
    # on the page that passed it. Empty when nothing was capped.
    capped: dict[str, int] = field(default_factory=dict)
    # Each address's verdict (docs/email-verdicts.md), in the order of ``emails``: email, status,
    # role, free_mail, matches_website. Empty until the addresses were judged (or none were found).
    email_verdicts: list[dict[str, Any]] = field(default_factory=list)
    primary_email: str | None = None  # the address to write to first: always a deliverable domain
    fetched_at: float | None = None
    unreachable: bool = False  # nothing answered at all: the egress breaker's evidence

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    def summary(self) -> dict[str, Any]:
        """The fields ``leadlawk site`` prints (docs/interfaces.md), null where unknown."""
        return {
            "site": self.site,
            "emails": self.emails,
            "phones": self.phones,
            "socials": self.socials,
            "contact_form": self.contact_form,
            "https": self.https,
            "mobile_viewport": self.mobile_viewport,
            "cms": self.cms,
            "tech": self.tech,
            "copyright_year": self.copyright_year,
            "status": self.status.value,
            "reason": self.reason,
        }
