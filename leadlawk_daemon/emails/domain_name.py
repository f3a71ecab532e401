"""A mail domain taken from a hostile address, checked before any lookup is asked for it.

Addresses come from web pages: their domains are attacker input. A domain is looked up only if
it is a host name DNS could hold: at most 253 characters once in its ASCII (IDNA) form, two labels
or more, each 1-63 letters, digits or hyphens, no hyphen at either end, and a top-level label that
is not all digits (``10.0.0.1`` is an address, not a domain). Every check reads the name once: a
bounded string, no pattern that could backtrack.
"""

from __future__ import annotations

__all__ = ["MAX_ADDRESS", "mail_domain", "valid_domain"]

MAX_ADDRESS = 254  # RFC 5321's path limit: nothing longer is an address
_MAX_DOMAIN = 253
_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def valid_domain(domain: str) -> str | None:
    """``domain`` lowercased, in its ASCII form, without a trailing dot; None when DNS could not hold it."""
    if not domain or len(domain) > _MAX_DOMAIN + 1:
        return None
    name = domain.lower().removesuffix(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")  # bounded: at most 254 characters in
        except UnicodeError:
            return None
    if len(name) > _MAX_DOMAIN:
        return None
    labels = name.split(".")
    if len(labels) < 2:
        return None
    for label in labels:
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-" or not _LDH.issuperset(label):
            return None
    if labels[-1].isdigit():
        return None
    return name


def mail_domain(address: str) -> str | None:
    """The checked domain of ``address`` (``local@domain``); None for no address at all."""
    if len(address) > MAX_ADDRESS:
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > 64:
        return None
    return valid_domain(domain)
