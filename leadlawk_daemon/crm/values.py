"""The values CRM import files are made of, read from ``leadlawk export`` rows.

Every reader tolerates a row without the column it reads (a store migrated before the address
parts or the email verdicts landed): the address falls back to the formatted address, the email
to the first one read on the website.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

import pycountry

from leadlawk_daemon.companies import company_domain

__all__ = [
    "Row",
    "by_company",
    "country_name",
    "email",
    "full_address",
    "is_e164",
    "notes",
    "phone",
    "region_name",
    "site_domain",
    "street",
    "text",
]

Row = Mapping[str, Any]
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def text(row: Row, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value or None


def is_e164(value: str) -> bool:
    """A phone in E.164, digits only after the ``+`` (what the lead's ``phone_e164`` holds)."""
    return _E164.fullmatch(value) is not None


def phone(row: Row) -> str | None:
    """The lead's phone in E.164 (every CRM here reads it as the number to dial, country included);
    the phone as Google showed it when it has none."""
    e164 = text(row, "phone_e164")
    return e164 if e164 and is_e164(e164) else text(row, "phone")


def email(row: Row) -> str | None:
    """``primary_email`` (the best verified address, docs/email-verdicts.md); in a row made before
    that column existed, the first address read on the website."""
    if "primary_email" in row:
        return text(row, "primary_email")
    found = text(row, "site_emails")
    return found.split("; ")[0] if found else None


def street(row: Row) -> str | None:
    """The street line: ``street`` where the address was split into parts, else the address as read
    (Google's first line is the street)."""
    return text(row, "street") or text(row, "address")


@lru_cache(maxsize=512)
def _country(code: str) -> Any:
    return pycountry.countries.get(alpha_2=code.upper())


def country_name(row: Row, style: Literal["iso", "common"] = "iso") -> str | None:
    """The English name of the lead's country (ISO 3166-1; ``common``: "South Korea" rather than
    "Korea, Republic of"), from its ``country_code``; ``None`` when unknown."""
    code = text(row, "country_code")
    found = _country(code) if code and len(code) == 2 else None
    if found is None:
        return None
    return str(getattr(found, "common_name", None) or found.name) if style == "common" else str(found.name)


@lru_cache(maxsize=2048)
def _subdivision(code: str) -> str | None:
    found = pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]  # pycountry: untyped here
    return None if found is None else str(found.name)


def region_name(row: Row) -> str | None:
    """The region (state, province) as its full name where ``region`` is its ISO 3166-2 code in the
    lead's country ("NE" in the US → "Nebraska"), else as written."""
    region, code = text(row, "region"), text(row, "country_code")
    if region and code and len(region) <= 3:
        return _subdivision(f"{code.upper()}-{region.upper()}") or region
    return region


def full_address(row: Row) -> str | None:
    """One line for a CRM with a single address field: the parts joined, the country last; the
    formatted address as read when the lead has no parts."""
    region_postal = " ".join(p for p in (text(row, "region"), text(row, "postal_code")) if p)
    place = [street(row), text(row, "locality"), region_postal]
    if text(row, "locality") or text(row, "postal_code"):
        return ", ".join(p for p in (*place, country_name(row, "common")) if p)
    # No parts to place it by: the address as read, with its country; a country alone is no address.
    known = text(row, "address") or street(row)
    return ", ".join(p for p in (known, country_name(row, "common")) if p) if known else None


def site_domain(row: Row) -> str | None:
    """The website's registrable domain (what a CRM matches companies by); a site on a shared
    builder is its own host (``acme.wixsite.com``), never the builder's domain."""
    website = text(row, "website")
    if not website:
        return None
    domain = company_domain(website)
    if domain is not None:
        return domain
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", website.casefold()).split("/", 1)[0].split("?", 1)[0]
    return host.removeprefix("www.") or None


def notes(row: Row, *names: str) -> str | None:
    """What the CRM has no field for, as one text: these columns of the row, then its chain."""
    parts = [text(row, name) for name in names]
    size = row.get("company_size")
    if isinstance(size, int) and size > 1:
        parts.append(f"one of {size} locations (company {row.get('company_id')})")
    return "; ".join(p for p in parts if p) or None


def by_company(rows: Iterable[Row]) -> list[Sequence[Row]]:
    """The rows of each company, in the order of each company's first row; a row not grouped yet
    (no ``company_id``) is a company of its own."""
    companies: dict[str, list[Row]] = {}
    for i, row in enumerate(rows):
        key = text(row, "company_id") or f"\x00{i}"
        companies.setdefault(key, []).append(row)
    return list(companies.values())
