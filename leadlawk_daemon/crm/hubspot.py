"""HubSpot: a companies import file (Contacts > Import > "File from computer" > Companies).

One row per company: HubSpot keeps one company record per domain and deduplicates companies by
"Company Domain Name", so a chain's branches are one company, its first branch's address and phone.
The lifecycle stage is left to the importer's step (or a column the user adds). Mapping, importer
version and citations: docs/crm-export.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadlawk_daemon.crm.format import CrmFormat, Record
from leadlawk_daemon.crm.values import Row, country_name, phone, region_name, site_domain, street, text

__all__ = ["HUBSPOT"]


def _description(rows: Sequence[Row]) -> str | None:
    first = rows[0]
    parts = [text(first, "category")]
    if len(rows) > 1:
        parts.append(f"{len(rows)} locations found")
    if first.get("rating") is not None:
        parts.append(f"Google rating {first['rating']} ({first.get('review_count') or 0} reviews)")
    return "; ".join(p for p in parts if p) or None


def _record(rows: Sequence[Row]) -> Record:
    first = rows[0]
    return {
        "Company name": text(first, "name"),
        "Company Domain Name": site_domain(first),
        "Website URL": text(first, "website"),
        "Phone Number": phone(first),
        "Street Address": street(first),
        "City": text(first, "locality"),
        "State/Region": region_name(first),
        "Postal Code": text(first, "postal_code"),
        "Country/Region": country_name(first, "common"),
        "Description": _description(rows),
    }


HUBSPOT = CrmFormat(
    name="hubspot",
    per="company",
    columns=tuple(_record([{}])),  # the record's own keys, in order
    required=("Company name",),
    record=_record,
    importer="HubSpot import tool, companies (knowledge base 'Set up your import files', read 2026-12)",
)
