"""A real daemon whose DNS goes down mid-job: the job says it waits on ``dns``, no lead's site
with addresses is written (nothing is marked ``unknown``), and once DNS answers again the job
succeeds with every verdict the DNS replica's truth gives, and qualifies leads by them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadlawk_daemon.replicas.dns import DnsReplica
from leadlawk_daemon.replicas.sites import SitesReplica
from leadlawk_daemon.store import open_store
from tests.daemon_process import DaemonProcess
from tests.waiting import eventually

LEADS = 12
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.maps_replica(max_results=LEADS),
    pytest.mark.sites_replica(seed=0),
]


async def _rows(tmp_path: Path, job_id: str) -> list[dict[str, Any]]:
    async with open_store(f"sqlite:///{tmp_path / 'daemon.db'}") as store:
        return list(await store.lead_rows_for_export(job_id))


async def test_a_dns_outage_pauses_the_job_and_marks_no_lead(
    tmp_path: Path, maps_url: str, sites_replica: SitesReplica, dns_replica: DnsReplica
) -> None:
    env = {
        "LEADLAWK__MAPS__BASE_URL": maps_url,
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "600",
        "LEADLAWK__SITES__ENABLED": "true",
        "LEADLAWK__SITES__PROXY": sites_replica.base_url,
        "LEADLAWK__SITES__CA_FILE": str(sites_replica.ca_path),
        "LEADLAWK__EMAILS__DNS_SERVERS": f'["{dns_replica.server}"]',
        "LEADLAWK__EMAILS__TIMEOUT": "0.3s",
        "LEADLAWK__EMAILS__DNS_FAILURES": "2",
        "LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__RESET_TIMEOUT": "1s",
    }
    async with DaemonProcess(tmp_path, env=env) as daemon:
        await daemon.wait_status("/health/ready", 200, within=90)
        dns_replica.set_down("drop")
        spec = {"query": "plumbers", "location": "Omaha, NE", "limit": LEADS, "pagespeed": {"enabled": False},
                "site": {"email": "deliverable"}}  # fmt: skip
        status, accepted = await daemon.post("/jobs", spec)
        assert status == 202, accepted
        job_id = accepted["id"]

        async def waiting_on_dns() -> dict[str, Any] | None:
            _, job = await daemon.get(f"/jobs/{job_id}")
            return job if "dns" in ((job or {}).get("progress") or {}).get("waiting_on", []) else None

        job = await eventually(waiting_on_dns, within=120, what="the job waiting on dns", every=0.2)
        assert job["status"] == "running"
        _, readiness = await daemon.get("/health/ready")
        assert "dns" in readiness["checks"]  # named there (not ready while its breaker is open)
        held = await _rows(tmp_path, job_id)
        assert not any(row["site_emails"] for row in held)  # sites with addresses are held back, unjudged
        assert not any(row["site_email_verdicts"] for row in held)

        dns_replica.set_down(None)

        async def finished() -> dict[str, Any] | None:
            _, job = await daemon.get(f"/jobs/{job_id}")
            return job if job is not None and job["status"] not in ("queued", "running") else None

        job = await eventually(finished, within=120, what="the job finished", every=0.2)
        assert job["status"] == "succeeded", job
    rows = await _rows(tmp_path, job_id)
    judged = [row for row in rows if row["site_emails"]]
    assert judged, "no lead's site showed an address"
    for row in rows:
        verdicts = row["site_email_verdicts"] or []
        host = str(row["website"]).split("//", 1)[-1].split("/", 1)[0].removeprefix("www.")
        assert [v["email"] for v in verdicts] == (row["site_emails"].split("; ") if row["site_emails"] else [])
        assert [{k: v[k] for k in ("email", "status", "role", "free_mail", "matches_website")} for v in verdicts] == [
            dns_replica.truth(v["email"], host) for v in verdicts]  # fmt: skip
        deliverable = any(v["status"] == "deliverable_domain" for v in verdicts)
        assert row["qualified"] is deliverable, row
        assert (row["primary_email"] is not None) is deliverable
