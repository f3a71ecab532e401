"""Email verdicts in the store, on PostgreSQL and SQLite (migration 009): stored with the site,
exported with each lead, and read back as the facts a resumed job judges its leads by."""

from __future__ import annotations

from leadlawk_daemon.emails import EmailStatus, EmailVerdict, primary_email
from leadlawk_daemon.jobs.verdicts import facts_of_row
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.qualify import Filters, site_reasons
from leadlawk_daemon.sites.report import SiteReport, SiteStatus
from leadlawk_daemon.store import JobLead, Store
from tests import test_store

# The store tests' fixtures: the same throwaway databases, on both backends.
db_url, clock, store = test_store.db_url, test_store.clock, test_store.store

VERDICTS = (
    EmailVerdict("info@acme.example", EmailStatus.DELIVERABLE_DOMAIN, True, False, True),
    EmailVerdict("mike@acme.example", EmailStatus.DELIVERABLE_DOMAIN, False, False, True),
    EmailVerdict("acme@mailinator.com", EmailStatus.DISPOSABLE, False, False, False),
)


async def test_verdicts_are_stored_per_site_exported_per_lead_and_judged_again_on_resume(store: Store) -> None:
    leads = [Listing(name="Acme", place_id=f"ChIJ{n}", website="http://acme.example/") for n in range(2)]
    await store.upsert_leads(leads)
    await store.create_job("j1", {"query": "roofers"})
    await store.upsert_job_leads("j1", [JobLead(lead.place_id or "", n, None, None) for n, lead in enumerate(leads)])
    primary = primary_email(VERDICTS)
    assert primary is not None
    report = SiteReport(
        site="acme.example", url="http://acme.example/", status=SiteStatus.OK,
        emails=[v.email for v in VERDICTS], email_verdicts=[v.to_dict() for v in VERDICTS],
        primary_email=primary.email,
    )  # fmt: skip
    await store.upsert_sites([(lead.place_id, report) for lead in leads])
    rows = {row["place_id"]: row for row in await store.lead_rows_for_export("j1")}
    for row in rows.values():  # a chain's branches share the site's verdicts
        assert (row["primary_email"], row["primary_email_status"]) == ("mike@acme.example", "deliverable_domain")
        assert row["site_email_verdicts"] == [v.to_dict() for v in VERDICTS]
    # A resumed job judges the stored lead from the same facts.
    _, _, site = facts_of_row(rows["ChIJ0"])
    assert site is not None
    assert site.primary_email == "mike@acme.example"
    spec = parse_job_spec({"query": "q", "site": {"email": "deliverable", "exclude_free_mail": True}}, 65_536)
    assert site_reasons(leads[0], site, Filters.from_spec(spec.to_dict()).site) == []


async def test_a_site_without_addresses_has_no_primary(store: Store) -> None:
    await store.upsert_leads([Listing(name="Bare", place_id="ChIJbare", website="http://bare.example/")])
    await store.create_job("j1", {"query": "roofers"})
    await store.upsert_job_leads("j1", [JobLead("ChIJbare", 0, None, None)])
    await store.upsert_sites(
        [("ChIJbare", SiteReport(site="bare.example", url="http://bare.example/", status=SiteStatus.OK))]
    )
    (row,) = await store.lead_rows_for_export("j1")
    assert (row["primary_email"], row["primary_email_status"], row["site_email_verdicts"]) == (None, None, None)
