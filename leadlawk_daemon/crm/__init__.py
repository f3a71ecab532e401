"""CRM import files (``leadlawk export --crm hubspot|pipedrive|salesforce``): the CSV each CRM's
own importer accepts, with its field names, its record per company or per location, and its
value formats. docs/crm-export.md has each mapping, the importer it was written against, and the
documentation it cites.

Every text cell goes through the spreadsheet neutralisation of every other export
(:func:`leadlawk_daemon.store.export.spreadsheet_safe`), with one exception: a phone in E.164 that
this program built (a ``+`` and 7-15 digits, nothing else) is written as it is, because an
importer would keep the neutralising apostrophe in the number, and digits cannot carry a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from leadlawk_daemon.crm.format import CrmFormat, Record
from leadlawk_daemon.crm.hubspot import HUBSPOT
from leadlawk_daemon.crm.pipedrive import PIPEDRIVE
from leadlawk_daemon.crm.salesforce import SALESFORCE
from leadlawk_daemon.crm.values import by_company, is_e164, text
from leadlawk_daemon.store.export import spreadsheet_safe

__all__ = ["CRM_FORMATS", "CRM_NAMES", "CrmFormat", "crm_records", "render_crm_csv"]

CRM_FORMATS: dict[str, CrmFormat] = {f.name: f for f in (HUBSPOT, PIPEDRIVE, SALESFORCE)}
CRM_NAMES: tuple[str, ...] = tuple(CRM_FORMATS)


def crm_records(crm: CrmFormat, rows: Iterable[Mapping[str, Any]]) -> list[Record]:
    """The file's rows from ``leadlawk export`` rows (in their order): one per company or per
    location, as the CRM keeps them. A row the CRM would refuse (a required field empty) is left
    out, and so is a result Google shows for a street address or a locality (``kind: address``):
    no business to import."""
    records = []
    for company in by_company(row for row in rows if row.get("kind") != "address"):
        if crm.per == "company":
            records.append(crm.record(company))
            continue
        name = text(company[0], "name")
        records.extend(crm.record([{**row, "company_name": name}]) for row in company)
    return [r for r in records if all(r.get(column) for column in crm.required)]


def _cell(value: str | None) -> str:
    if value is None:
        return ""
    return value if is_e164(value) else str(spreadsheet_safe(value))


def render_crm_csv(crm: CrmFormat, rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV file: a header of the CRM's field names, then its records; UTF-8 text, CRLF rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(crm.columns)
    for record in crm_records(crm, rows):
        writer.writerow([_cell(record.get(column)) for column in crm.columns])
    return buffer.getvalue()
