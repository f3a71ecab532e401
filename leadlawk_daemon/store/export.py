"""The flat rows of ``leadlawk export``: one per lead, its PageSpeed results spread into columns.

Flat so that CSV and JSONL carry the same columns; timestamps as ISO-8601 UTC text, ``None`` where
unknown. Both backends read their rows into the same Python types and assemble them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from leadlawk_daemon.listing import LISTING_FIELDS
from leadlawk_daemon.store.base import STRATEGIES
from leadlawk_daemon.store.sites import SITE_EXPORT_COLUMNS, site_export_values

__all__ = [
    "FORMULA_PREFIXES",
    "LEAD_COLUMNS",
    "PAGESPEED_COLUMNS",
    "SITE_EXPORT_COLUMNS",
    "export_columns",
    "export_rows",
    "spreadsheet_safe",
]

# What makes a spreadsheet read a cell as a formula (OWASP's "CSV injection" list): a scraped name
# like =HYPERLINK("http://evil", "Call us") or a phone like +1-555-0100 would otherwise run or mangle.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

LEAD_COLUMNS: tuple[str, ...] = ("place_id", *(f for f in LISTING_FIELDS if f != "place_id"))
LEAD_COLUMNS_WITH_SEEN: tuple[str, ...] = (*LEAD_COLUMNS, "first_seen_at", "last_seen_at")
JOB_COLUMNS: tuple[str, ...] = ("job_id", "rank", "qualified", "reasons")
PAGESPEED_COLUMNS: tuple[str, ...] = (
    "performance",
    "accessibility",
    "best_practices",
    "seo",
    "fcp_ms",
    "lcp_ms",
    "tbt_ms",
    "speed_index_ms",
    "tti_ms",
    "cls",
    "final_url",
    "error",
    "field_data",
    "tested_at",
)


def export_columns(with_job: bool) -> tuple[str, ...]:
    """Column order of :func:`export_rows`: lead, then (per job) rank and verdict, then PageSpeed,
    then the lead's site (its verdict, contacts and facts)."""
    spread = tuple(f"{s}_{c}" for s in STRATEGIES for c in PAGESPEED_COLUMNS)
    return (*LEAD_COLUMNS_WITH_SEEN, *(JOB_COLUMNS if with_job else ()), *spread, *SITE_EXPORT_COLUMNS)


def spreadsheet_safe(value: Any) -> Any:
    """A cell for a spreadsheet file (CSV, XLSX): text beginning with a formula prefix gets a leading
    ``'``, which spreadsheets take as "this is text" and do not show. Anything else is unchanged.

    Every export to a spreadsheet format goes through this one rule; JSONL is data, not a sheet."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def export_rows(
    leads: Iterable[Mapping[str, Any]],
    pagespeed: Iterable[Mapping[str, Any]],
    with_job: bool,
    sites: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Join lead rows (in output order) with PageSpeed rows and site rows (each with its lead's
    ``place_id``; any order) by ``place_id``."""
    by_lead = {s["place_id"]: s for s in sites}
    tests: dict[tuple[str, str], Mapping[str, Any]] = {(p["place_id"], p["strategy"]): p for p in pagespeed}
    columns = export_columns(with_job)
    out = []
    for lead in leads:
        row = dict.fromkeys(columns)
        for name in (*LEAD_COLUMNS_WITH_SEEN, *(JOB_COLUMNS if with_job else ())):
            row[name] = _plain(lead[name])
        for strategy in STRATEGIES:
            test = tests.get((lead["place_id"], strategy))
            if test is not None:
                for name in PAGESPEED_COLUMNS:
                    row[f"{strategy}_{name}"] = _plain(test[name])
        row.update(site_export_values(by_lead.get(lead["place_id"])))
        out.append(row)
    return out
