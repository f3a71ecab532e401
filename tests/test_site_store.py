"""Site reports in the store, on PostgreSQL and SQLite: one row per site, shared by a chain's
leads, idempotent, and exported with each lead."""

from __future__ import annotations

from typing import Any

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.sites.report import SiteReport, SiteStatus
from leadlawk_daemon.store import JobLead, Store
from leadlawk_daemon.store.sites import SITE_EXPORT_COLUMNS
from tests import test_store

# The store tests' fixtures: the same throwaway databases, on both backends.
db_url, clock, store = test_store.db_url, test_store.clock, test_store.store


def _report(site: str, **facts: Any) -> SiteReport:
    base: dict[str, Any] = {
        "site": site, "url": f"http://{site}/", "status": SiteStatus.OK, "final_url": f"https://{site}/",
        "redirects": [f"http://{site}/"], "http_status": 200, "https": True, "cert_valid": True,
        "http_to_https": True, "mobile_viewport": False, "cms": "wix", "generator": "Wix.com Website Builder",
        "copyright_year": 2014, "last_modified": "2019-03-12", "page_bytes": 48_000, "server": "Pepyaka",
        "emails": [f"info@{site}", f"owner@{site}"], "rejected_emails": {"you@example.com": "example_domain"},
        "phones": ["+14025550100"], "socials": {"facebook": "https://facebook.com/acme"}, "contact_form": True,
    }
    return SiteReport(**(base | facts))


async def test_sites_are_stored_once_per_origin_and_exported_with_each_lead(store: Store) -> None:
    leads = [Listing(name="Acme", place_id=f"ChIJ{n}", website="http://acme.example/") for n in range(3)]
    leads.append(Listing(name="Bare", place_id="ChIJbare", website=None))
    await store.upsert_leads(leads)
    await store.create_job("j1", {"query": "roofers"})
    await store.upsert_job_leads("j1", [JobLead(lead.place_id or "", n, True, []) for n, lead in enumerate(leads)])
    report = _report("acme.example")
    rows: list[tuple[str | None, SiteReport]] = [(lead.place_id, report) for lead in leads[:3]]
    assert await store.upsert_sites(rows) == 1
    assert await store.upsert_sites([*rows, (None, report)]) == 1  # again: idempotent
    exported = {row["place_id"]: row for row in await store.lead_rows_for_export("j1")}
    acme = exported["ChIJ0"]
    assert list(acme)[-len(SITE_EXPORT_COLUMNS):] == list(SITE_EXPORT_COLUMNS)
    assert {k: acme[k] for k in ("site_status", "site_emails", "site_cms", "site_https", "site_mobile_viewport",
                                 "site_copyright_year", "site_last_modified", "site_contact_form")} == {
        "site_status": "ok", "site_emails": "info@acme.example; owner@acme.example", "site_cms": "wix",
        "site_https": True, "site_mobile_viewport": False, "site_copyright_year": 2014,
        "site_last_modified": "2019-03-12", "site_contact_form": True,
    }
    assert exported["ChIJ2"]["site_emails"] == acme["site_emails"]  # a chain's branches share one row
    assert all(exported["ChIJbare"][c] is None for c in SITE_EXPORT_COLUMNS)  # no site: empty, present
    everything = {row["place_id"]: row for row in await store.lead_rows_for_export()}
    assert everything["ChIJ1"]["site_phones"] == "+14025550100"


async def test_a_dead_site_is_a_row_too_and_a_later_read_replaces_it(store: Store) -> None:
    await store.upsert_leads([Listing(name="Gone", place_id="ChIJgone", website="http://gone.example/")])
    dead = SiteReport(site="gone.example", url="http://gone.example/", status=SiteStatus.DEAD,
                      reason="DNS lookup failed", unreachable=True)
    await store.upsert_sites([("ChIJgone", dead)])
    row = (await store.lead_rows_for_export())[0]
    assert (row["site_status"], row["site_reason"], row["site_emails"], row["site_https"]) == (
        "dead", "DNS lookup failed", None, None)
    await store.upsert_sites([("ChIJgone", _report("gone.example", page_bytes=10**12))])
    row = (await store.lead_rows_for_export())[0]
    assert (row["site_status"], row["site_page_bytes"]) == ("ok", 2**31 - 1)
