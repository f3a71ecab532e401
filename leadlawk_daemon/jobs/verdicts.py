"""A lead's verdict, with one owner: judged once every fact its job asked for is durable.

A lead's facts are its listing, its PageSpeed results (when the job tests websites) and its site
report (when it reads them). The writer only writes facts; this book learns from the job's state
which facts became durable (a commit acknowledged) and which will not come (the lead failed that
stage, it has no website). Once none is awaited, the lead is *due*: :func:`qualify` of its durable
facts is its verdict, written in a step of its own (:func:`write_verdicts`, by the job's driver).
A fact that becomes durable after that (a replay) makes the lead due again, and nothing else does:
no verdict is ever computed from half of a lead's facts, whatever order they were written in.

A run that resumes a job reads the facts back from the store (:func:`facts_of_row`), so that a
lead judged again there is judged on everything stored, not only on what this run wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.qualify import Filters, Qualification, qualify
from leadlawk_daemon.sites.report import SiteReport, SiteStatus
from leadlawk_daemon.store.base import STRATEGIES, JobLead, Store

__all__ = ["FactKind", "Verdict", "VerdictBook", "facts_of_row", "listing_of_row", "write_verdicts"]

FactKind = Literal["pagespeed", "site"]



class Verdict(NamedTuple):
    place_id: str
    # Which state of the lead's facts it judged: a newer fact makes it stale.
    version: int
    qualification: Qualification


@dataclass(slots=True)
class _Lead:
    listing: Listing
    durable: bool = False
    results: tuple[PageSpeedResult, ...] = ()
    site: SiteReport | None = None
    awaited: set[FactKind] = field(default_factory=set)
    version: int = 1
    judged: int = 0  # the version whose verdict is durable; 0: none is


class VerdictBook:
    """One job's leads, their durable facts, and which of them are due a verdict."""

    def __init__(self, filters: Filters, limited_view: Callable[[str], bool]) -> None:
        self._filters = filters
        self._limited_view = limited_view
        self._leads: dict[str, _Lead] = {}
        self._company_sizes: dict[str, int] = {}

    @property
    def filters_chains(self) -> bool:
        """Whether the job's filters read each lead's company (docs/chains.md)."""
        return self._filters.chains

    def companies_grouped(self, sizes: Mapping[str, int]) -> None:
        """The job's leads are grouped into companies (place id → branches found): a lead whose
        company size changed is due a verdict again, judged by it."""
        for place_id, size in sizes.items():
            if self._company_sizes.get(place_id) != size:
                self._company_sizes[place_id] = size
                self._changed(place_id, lambda lead: None)

    def expect(self, place_id: str, listing: Listing, awaited: Iterable[FactKind]) -> None:
        """A lead handed to the writer, and the facts of it the job still asks for."""
        lead = self._leads.get(place_id)
        if lead is None:
            lead = self._leads[place_id] = _Lead(listing)
        lead.awaited.update(awaited)

    def resume(
        self,
        place_id: str,
        facts: tuple[Listing, tuple[PageSpeedResult, ...], SiteReport | None],
        awaited: Iterable[FactKind],
        *,
        judged: bool,
    ) -> None:
        """A lead the store holds already, with its stored facts; ``judged``: its verdict is stored."""
        listing, results, site = facts
        lead = self._leads[place_id] = _Lead(listing, durable=True, results=results, site=site)
        lead.awaited.update(awaited)
        if judged:
            lead.judged = lead.version

    def lead_durable(self, place_id: str) -> None:
        self._changed(place_id, lambda lead: setattr(lead, "durable", True))

    def results_durable(self, place_id: str, results: Sequence[PageSpeedResult]) -> None:
        def update(lead: _Lead) -> None:
            # A strategy tested again replaces its result; the others stay as stored.
            fresh = {r.strategy for r in results}
            lead.results = (*(r for r in lead.results if r.strategy not in fresh), *results)
            lead.awaited.discard("pagespeed")

        self._changed(place_id, update)

    def site_durable(self, place_id: str, report: SiteReport) -> None:
        def update(lead: _Lead) -> None:
            lead.site = report
            lead.awaited.discard("site")

        self._changed(place_id, update)

    def will_not_come(self, place_id: str, *kinds: FactKind) -> None:
        """Those facts of the lead will not be written in this run (it failed them, or has nothing to
        read): the lead is judged without them."""
        lead = self._leads.get(place_id)
        if lead is not None:
            lead.awaited.difference_update(kinds)

    def due(self, *, final: bool = False) -> list[Verdict]:
        """The verdicts to write now: leads whose row is durable, with no fact awaited, and facts newer
        than their durable verdict. ``final``: the run ends, so no awaited fact will come."""
        return [
            Verdict(place_id, lead.version, self._judge(place_id, lead))
            for place_id, lead in self._leads.items()
            if lead.durable and lead.judged < lead.version and (final or not lead.awaited)
        ]

    def any_due(self) -> bool:
        return any(lead.durable and lead.judged < lead.version and not lead.awaited for lead in self._leads.values())

    def written(self, verdicts: Iterable[Verdict]) -> None:
        """These verdicts are durable (a fact that arrived meanwhile keeps its lead due)."""
        for verdict in verdicts:
            lead = self._leads.get(verdict.place_id)
            if lead is not None:
                lead.judged = max(lead.judged, verdict.version)

    def _judge(self, place_id: str, lead: _Lead) -> Qualification:
        return qualify(
            lead.listing,
            lead.results,
            self._filters,
            lead.site,
            limited_view=self._limited_view(place_id),
            company_size=self._company_sizes.get(place_id),
        )

    def _changed(self, place_id: str, update: Callable[[_Lead], None]) -> None:
        lead = self._leads.get(place_id)
        if lead is None:
            return  # not a lead of this run (its row came from elsewhere): nothing of it to judge
        update(lead)
        lead.version += 1


async def write_verdicts(store: Store, job_id: str, verdicts: Sequence[Verdict]) -> int:
    """The verdicts onto the job's ``job_leads`` rows (the rank stays as stored); how many."""
    if not verdicts:
        return 0
    return await store.upsert_job_leads(
        job_id, [JobLead(v.place_id, None, v.qualification.qualified, v.qualification.reasons) for v in verdicts]
    )


def listing_of_row(row: Mapping[str, Any]) -> Listing:
    """A stored lead as a listing (an export row of the store)."""
    values: dict[str, Any] = {name: row.get(name) for name in LISTING_FIELDS}
    hours = values.get("hours")
    if hours is not None:
        values["hours"] = tuple(tuple(pair) for pair in hours)
    return Listing(**values)


def facts_of_row(row: Mapping[str, Any]) -> tuple[Listing, tuple[PageSpeedResult, ...], SiteReport | None]:
    """A lead's stored facts, read back from its export row (``store.lead_rows_for_export``): what a
    verdict is computed from when the lead was written by another run."""
    listing = listing_of_row(row)
    results = tuple(r for s in STRATEGIES if (r := _result_of_row(row, s)) is not None)
    return listing, results, _site_of_row(row)


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return datetime.fromtimestamp(0, UTC)


def _result_of_row(row: Mapping[str, Any], strategy: str) -> PageSpeedResult | None:
    tested_at = row.get(f"{strategy}_tested_at")
    if tested_at is None:
        return None
    def score(name: str) -> int | None:
        value = row.get(f"{strategy}_{name}")
        return None if value is None else int(value)

    def timing(name: str) -> float | None:
        value = row.get(f"{strategy}_{name}")
        return None if value is None else float(value)

    return PageSpeedResult(
        place_id=row.get("place_id"),
        strategy=strategy,
        url=row.get("website") or "",
        tested_at=_when(tested_at),
        performance=score("performance"),
        accessibility=score("accessibility"),
        best_practices=score("best_practices"),
        seo=score("seo"),
        fcp_ms=timing("fcp_ms"),
        lcp_ms=timing("lcp_ms"),
        tbt_ms=timing("tbt_ms"),
        speed_index_ms=timing("speed_index_ms"),
        tti_ms=timing("tti_ms"),
        cls=timing("cls"),
        final_url=row.get(f"{strategy}_final_url"),
        error=row.get(f"{strategy}_error"),
    )


def _site_of_row(row: Mapping[str, Any]) -> SiteReport | None:
    status = row.get("site_status")
    if status is None:
        return None
    emails = row.get("site_emails")
    last_modified = row.get("site_last_modified")
    return SiteReport(
        site=row.get("website") or "",
        url=row.get("website") or "",
        status=SiteStatus(status),
        reason=row.get("site_reason"),
        final_url=row.get("site_final_url"),
        https=row.get("site_https"),
        cert_valid=row.get("site_cert_valid"),
        http_to_https=row.get("site_http_to_https"),
        mobile_viewport=row.get("site_mobile_viewport"),
        cms=row.get("site_cms"),
        tech=(row.get("site_tech") or "").split("; ") if row.get("site_tech") else [],
        copyright_year=row.get("site_copyright_year"),
        last_modified=last_modified[:10] if isinstance(last_modified, str) else None,
        emails=emails.split("; ") if emails else [],
        contact_form=row.get("site_contact_form"),
        email_verdicts=list(row.get("site_email_verdicts") or []),
        primary_email=row.get("primary_email"),
    )
