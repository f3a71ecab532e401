"""Salesforce: a Lead import file for the Data Import Wizard (Setup > Data Import Wizard > Leads).

One row per location: a Salesforce lead is a prospect at one company, and each branch is one to
call. Last Name and Company are required on every lead; a business found on Maps has no person,
so Last Name is "[not provided]", the placeholder Salesforce's own Web-to-Lead writes. Country is
the ISO 3166 name, which both free-text and picklist address fields take (picklist integration
values default to the ISO names); State/Province is the region's full name. Lead Status and Lead
Source are left to the wizard (its first page sets Lead Source for the whole file). Mapping and
citations: docs/crm-export.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadlawk_daemon.crm.format import CrmFormat, Record
from leadlawk_daemon.crm.values import Row, country_name, email, notes, phone, region_name, street, text

__all__ = ["NOT_PROVIDED", "SALESFORCE"]

NOT_PROVIDED = "[not provided]"


def _record(rows: Sequence[Row]) -> Record:
    row = rows[0]
    return {
        "Company": text(row, "name") or NOT_PROVIDED,
        "Last Name": NOT_PROVIDED,
        "Phone": phone(row),
        "Email": email(row),
        "Website": text(row, "website"),
        "Street": street(row),
        "City": text(row, "locality"),
        "State/Province": region_name(row),
        "Postal Code": text(row, "postal_code"),
        "Country": country_name(row, "iso"),
        "Description": notes(row, "category", "maps_url"),
    }


SALESFORCE = CrmFormat(
    name="salesforce",
    per="location",
    columns=tuple(_record([{}])),  # the record's own keys, in order
    required=("Company", "Last Name"),
    record=_record,
    importer="Salesforce Data Import Wizard, Leads ('Field Mapping for Importing Leads', read 2026-12)",
)
