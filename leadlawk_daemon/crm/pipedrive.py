"""Pipedrive: a spreadsheet import of organizations and people (Tools and apps > Import data >
From a spreadsheet).

One row per location: an organization with one address (Pipedrive's organization address is a
single field it geocodes) and a person for the location's own line, since phones and emails are
person fields in Pipedrive. A chain's branches carry the chain's name as their organization, so
Pipedrive's duplicate merge makes them one organization with a contact per branch. Labels and
deal stages are left to the user. Mapping and citations: docs/crm-export.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadlawk_daemon.crm.format import CrmFormat, Record
from leadlawk_daemon.crm.values import Row, email, full_address, notes, phone, street, text

__all__ = ["PIPEDRIVE"]


def _record(rows: Sequence[Row]) -> Record:
    row = rows[0]
    where = street(row) or text(row, "locality")
    name = text(row, "name")
    return {
        # The chain's name (its first branch's, set by the writer) on every branch: one organization.
        "Organization - Name": text(row, "company_name") or name,
        "Organization - Address": full_address(row),
        # A person is the location's line: named for the place, and for its branch in a chain.
        "Person - Name": f"{name} ({where})" if name and where and (row.get("company_size") or 1) > 1 else name,
        "Person - Phone": phone(row),
        "Person - Email": email(row),
        "Note - Content": notes(row, "category", "website", "maps_url"),
    }


PIPEDRIVE = CrmFormat(
    name="pipedrive",
    per="location",
    columns=tuple(_record([{}])),  # the record's own keys, in order
    required=("Organization - Name", "Person - Name"),
    record=_record,
    importer="Pipedrive spreadsheet import (knowledge base 'Importing: mandatory fields', April 2026)",
)
