"""CRM import files (docs/crm-export.md), read back as each CRM's importer would: its documented
required columns filled on every row, one row per company or per location as it keeps them, and
its value formats (E.164 phones, country and region names it accepts), with scraped text
neutralised for spreadsheets."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import pycountry
import pytest

from leadlawk_daemon.crm import CRM_FORMATS, render_crm_csv
from leadlawk_daemon.crm.salesforce import NOT_PROVIDED
from leadlawk_daemon.crm.values import full_address
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.store import JobLead, Store, open_store
from tests.test_cli_control import cli

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# What each importer's documentation names as needed (docs/crm-export.md cites each).
REQUIRED = {
    "hubspot": ("Company name", "Company Domain Name"),  # the column; a value where the lead has a website
    "pipedrive": ("Organization - Name", "Person - Name"),
    "salesforce": ("Last Name", "Company"),
}


def _row(place_id: str, name: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "place_id": place_id,
        "name": name,
        "category": "Plumber",
        "rating": 4.6,
        "review_count": 12,
    }
    return base | values


OMAHA = {"locality": "Omaha", "region": "NE", "country_code": "US"}
ROWS = [
    # A chain: three branches, one website, one central phone, one company.
    *(
        _row(f"c{i}", "Acme Plumbing", website=f"https://www.acme-plumbing.com/{i}", phone_e164="+14025550100",
             phone="(402) 555-0100", street=f"{i}00 Dodge St", postal_code=f"6810{i}", company_id="co_acme",
             company_size=3, address=f"{i}00 Dodge St", primary_email="office@acme-plumbing.com", **OMAHA)
        for i in range(1, 4)
    ),
    _row("de", "Klempner Müller", website="https://klempner-mueller.de/", phone_e164="+493012345678",
         street="Hauptstraße 5", locality="Berlin", region="BE", postal_code="10115", country_code="DE",
         company_id="co_de", company_size=1, primary_email=None),
    _row("wix", "Solo Pipes", website="https://solopipes.wixsite.com/home", phone_e164="+14025550111",
         company_id="co_wix", company_size=1, address="9 Elm St", **OMAHA),
    _row("evil", '=HYPERLINK("http://evil.example","Call us")', phone="+1-555-0100", company_id="co_evil",
         company_size=1, category="@SUM(A1:A9)", address="-2+3 Main St"),
    # A street address Google listed, not a business: in no CRM file.
    _row("addr", "8706 W Pacific Pkwy", kind="address", company_id="co_addr", company_size=1),
    # An older store's row: no address parts and no primary_email column yet.
    {"place_id": "old", "name": "Old Row Roofing", "address": "1 Oak Ave", "phone_e164": "+14025550122",
     "website": "http://oldrow.example/", "site_emails": "info@oldrow.example; bob@oldrow.example"},
]  # fmt: skip


def read_back(crm: str, rows: list[dict[str, Any]] = ROWS) -> list[dict[str, str]]:
    text = render_crm_csv(CRM_FORMATS[crm], rows)
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("crm", sorted(CRM_FORMATS))
def test_every_file_has_the_importers_required_columns_filled_in(crm: str) -> None:
    records = read_back(crm)
    assert records
    for column in REQUIRED[crm]:
        assert column in records[0], column
    for record in records:
        for column in CRM_FORMATS[crm].required:
            assert record[column], (column, record)
        for value in record.values():
            # Scraped text cannot be a live formula in any of them.
            assert not value.startswith(("=", "-", "@", "\t", "\r")), value
            assert not value.startswith("+") or E164.fullmatch(value), value


def test_hubspot_has_one_company_per_chain_with_its_domain_and_country_name() -> None:
    records = read_back("hubspot")
    assert [r["Company name"] for r in records].count("Acme Plumbing") == 1  # one company, not three
    acme = next(r for r in records if r["Company name"] == "Acme Plumbing")
    assert acme["Company Domain Name"] == "acme-plumbing.com"  # registrable: HubSpot's dedupe key
    assert acme["Phone Number"] == "+14025550100"
    assert (acme["Street Address"], acme["City"], acme["State/Region"], acme["Postal Code"]) == (
        "100 Dodge St",
        "Omaha",
        "Nebraska",
        "68101",
    )
    assert acme["Country/Region"] == "United States"
    assert "3 locations found" in acme["Description"]
    german = next(r for r in records if r["Company name"] == "Klempner Müller")
    assert (german["Country/Region"], german["State/Region"]) == ("Germany", "Berlin")
    solo = next(r for r in records if r["Company name"] == "Solo Pipes")
    assert solo["Company Domain Name"] == "solopipes.wixsite.com"  # its own site, never wixsite.com
    assert len(records) == 5  # seven rows, five companies
    assert "Lifecycle Stage" not in records[0]  # left for the user


def test_pipedrive_has_one_row_per_location_joined_to_one_organization() -> None:
    records = read_back("pipedrive")
    assert len(records) == len(ROWS) - 1  # every location but the street address
    branches = [r for r in records if r["Organization - Name"] == "Acme Plumbing"]
    assert len(branches) == 3
    assert len({r["Person - Name"] for r in branches}) == 3  # a contact per branch
    assert branches[0]["Organization - Address"] == "100 Dodge St, Omaha, NE 68101, United States"
    assert branches[0]["Person - Email"] == "office@acme-plumbing.com"
    assert all(r["Person - Phone"] == "+14025550100" for r in branches)
    old = next(r for r in records if r["Organization - Name"] == "Old Row Roofing")
    assert old["Organization - Address"] == "1 Oak Ave"
    assert old["Person - Email"] == "info@oldrow.example"  # no primary_email column yet: the site's first


def test_salesforce_leads_are_per_location_with_iso_country_names_and_state_names() -> None:
    records = read_back("salesforce")
    assert len(records) == len(ROWS) - 1
    assert not any(r["Company"] == "8706 W Pacific Pkwy" for r in records)
    assert {r["Last Name"] for r in records} == {NOT_PROVIDED}
    for record in records:
        if record["Country"]:
            assert pycountry.countries.get(name=record["Country"]) is not None, record["Country"]
        assert record["Phone"] == "" or E164.fullmatch(record["Phone"]) or record["Phone"].startswith("'")
    acme = [r for r in records if r["Company"] == "Acme Plumbing"]
    assert {(r["City"], r["State/Province"], r["Country"]) for r in acme} == {("Omaha", "Nebraska", "United States")}
    assert "Lead Status" not in records[0]  # the wizard's default status, or the user's
    evil = next(r for r in records if "HYPERLINK" in r["Company"])
    assert evil["Company"].startswith("'=")
    assert evil["Phone"] == "'+1-555-0100"  # not E.164: neutralised like any other text


async def seed_chain_job(store: Store) -> None:
    """Job ``job-c``: two branches of Acme Plumbing (one website, one phone) that qualify, and
    Beta Drains, which does not."""
    await store.create_job("job-c", {"id": "job-c", "query": "plumbers"})
    await store.upsert_leads([
        Listing(name="Acme Plumbing", place_id="a1", website="https://acme.example/", address="1 A St",
                phone_e164="+14025550100"),
        Listing(name="Acme Plumbing", place_id="a2", website="https://www.acme.example/b", address="2 B St",
                phone_e164="+14025550100"),
        Listing(name="Beta Drains", place_id="b1", website="https://beta.example/", address="3 C St"),
    ])  # fmt: skip
    await store.upsert_job_leads("job-c", [JobLead("a1", 1, True, []), JobLead("a2", 2, True, []),
                                           JobLead("b1", 3, False, ["no"])])  # fmt: skip


def test_leadlawk_export_crm_writes_each_file_with_the_stores_companies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"

    async def seed() -> None:
        async with open_store(url, migrate=True) as store:
            await seed_chain_job(store)

    asyncio.run(seed())
    counts = {}
    for crm in sorted(CRM_FORMATS):
        out = tmp_path / f"{crm}.csv"
        done = cli("export", "--job", "job-c", "--crm", crm, "-o", str(out), db=url)
        assert done.returncode == 0, done.stderr
        with out.open(encoding="utf-8", newline="") as f:
            records = list(csv.DictReader(f))
        assert list(records[0]) == list(CRM_FORMATS[crm].columns)
        counts[crm] = len(records)
    assert counts == {"hubspot": 2, "pipedrive": 3, "salesforce": 3}  # the chain grouped on the way
    refused = cli("export", "--crm", "hubspot", "--format", "xlsx", db=url)
    assert refused.returncode != 0
    # --new-since narrows a CRM file as it does every export: nothing was first seen in 2999.
    later = cli("export", "--crm", "salesforce", "--new-since", "2999-01-01", db=url)
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines() == [",".join(CRM_FORMATS["salesforce"].columns)]


def test_a_one_line_address_is_the_parts_in_order_or_the_address_as_read_never_a_country_alone() -> None:
    assert full_address({"street": "Hauptstraße 5", "locality": "Berlin", "postal_code": "10115",
                         "country_code": "DE"}) == "Hauptstraße 5, Berlin, 10115, Germany"  # fmt: skip
    assert full_address({"address": "Schillerstraße 225", "country_code": "DE"}) == "Schillerstraße 225, Germany"
    assert full_address({"address": "1 Oak Ave"}) == "1 Oak Ave"
    assert full_address({"country_code": "US"}) is None  # a service-area business: no address to import
