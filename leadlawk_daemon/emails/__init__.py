"""Email verdicts: each address a website shows, judged by its domain's DNS and by what it is.

See docs/email-verdicts.md: the statuses and flags, where DNS goes, and what an outage does.
"""

from leadlawk_daemon.emails.resolver import DnsUnavailable, MailDomain, MailDomainResolver
from leadlawk_daemon.emails.verdict import EmailStatus, EmailVerdict, judge, primary_email
from leadlawk_daemon.emails.verifier import DNS_BREAKER, DnsOutage, EmailCheck, EmailVerifier, dns_breaker

__all__ = [
    "DNS_BREAKER",
    "DnsOutage",
    "DnsUnavailable",
    "EmailCheck",
    "EmailStatus",
    "EmailVerdict",
    "EmailVerifier",
    "MailDomain",
    "MailDomainResolver",
    "dns_breaker",
    "judge",
    "primary_email",
]
