"""One address's verdict, and the lead's primary address among them.

``status`` is what its domain says (:class:`EmailStatus`); the flags are read from the address
itself and the lead's website, with no lookup: ``role`` (a function's inbox: ``info@``),
``free_mail`` (a consumer provider: ``gmail.com``), ``matches_website`` (the same registrable
domain as the website, by the Public Suffix List).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from leadlawk_daemon.emails.domain_name import mail_domain
from leadlawk_daemon.emails.lists import is_disposable, is_free_mail, is_role
from leadlawk_daemon.emails.resolver import MailDomain
from leadlawk_daemon.sites.emails import registrable_domain

__all__ = ["EmailStatus", "EmailVerdict", "judge", "needs_lookup", "primary_email"]


class EmailStatus(StrEnum):
    DELIVERABLE_DOMAIN = "deliverable_domain"  # MX, or an address record (the implicit MX)
    NO_MAIL_DOMAIN = "no_mail_domain"  # NXDOMAIN, a null MX, neither MX nor address; or no valid domain
    DISPOSABLE = "disposable"  # a throwaway inbox provider, whatever its DNS says
    UNKNOWN = "unknown"  # DNS did not answer: a retry, never stored as a lead's verdict


@dataclass(frozen=True, slots=True)
class EmailVerdict:
    email: str
    status: EmailStatus
    role: bool
    free_mail: bool
    matches_website: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "status": self.status.value,
            "role": self.role,
            "free_mail": self.free_mail,
            "matches_website": self.matches_website,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmailVerdict:
        return cls(
            email=str(data.get("email") or ""),
            status=EmailStatus(data.get("status") or EmailStatus.UNKNOWN),
            role=data.get("role") is True,
            free_mail=data.get("free_mail") is True,
            matches_website=data.get("matches_website") is True,
        )


def needs_lookup(address: str) -> str | None:
    """The domain whose DNS decides ``address``'s status; None when no lookup can change it
    (disposable, or no domain DNS could hold)."""
    domain = mail_domain(address)
    return None if domain is None or is_disposable(domain) else domain


def judge(address: str, website_host: str | None, domain_says: MailDomain | None) -> EmailVerdict:
    """The verdict of ``address`` on the website at ``website_host``; ``domain_says``: its domain's
    DNS answer (None: not asked, or not answered)."""
    domain = mail_domain(address)
    local = address.rpartition("@")[0]
    if domain is None:
        return EmailVerdict(address, EmailStatus.NO_MAIL_DOMAIN, is_role(local), False, False)
    disposable = is_disposable(domain)
    if disposable:
        status = EmailStatus.DISPOSABLE
    elif domain_says is None:
        status = EmailStatus.UNKNOWN
    else:
        status = EmailStatus(domain_says.value)
    site = registrable_domain(website_host) if website_host else None
    return EmailVerdict(
        email=address,
        status=status,
        role=is_role(local),
        free_mail=is_free_mail(domain) and not disposable,  # some lists hold both: disposable says more
        matches_website=site is not None and registrable_domain(domain) == site,
    )


def primary_email(verdicts: Iterable[EmailVerdict]) -> EmailVerdict | None:
    """The address to write to first: only a deliverable domain; then on the website's own domain
    before elsewhere, a person's address before a role inbox, a company's domain before free
    mail, and the order the site shows them in. None when no address is deliverable."""
    ranked = [
        ((not v.matches_website, v.role, v.free_mail, i), v)
        for i, v in enumerate(verdicts)
        if v.status is EmailStatus.DELIVERABLE_DOMAIN
    ]
    return min(ranked, key=lambda pair: pair[0])[1] if ranked else None
