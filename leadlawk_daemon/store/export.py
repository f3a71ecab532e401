"""The flat rows of ``leadlawk export``: one per lead, its PageSpeed results spread into columns.

Flat so that CSV and JSONL carry the same columns; timestamps as ISO-8601 UTC text, ``None`` where
unknown. Both backends read their rows into the same Python types and assemble them here.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from leadlawk_daemon.listing import LISTING_FIELDS
from leadlawk_daemon.store.base import STRATEGIES
from leadlawk_daemon.store.companies import COMPANY_EXPORT_COLUMNS
from leadlawk_daemon.store.sites import SITE_EXPORT_COLUMNS, site_export_values

__all__ = [
    "COMPANY_EXPORT_COLUMNS",
    "FORMULA_PREFIXES",
    "LEAD_COLUMNS",
    "PAGESPEED_COLUMNS",
    "SITE_EXPORT_COLUMNS",
    "export_columns",
    "export_rows",
    "first_seen_after",
    "parse_since",
    "spreadsheet_safe",
    "write_xlsx",
]

# What makes a spreadsheet read a cell as a formula (OWASP's "CSV injection" list), with the
# full-width signs some spreadsheets fold to ASCII: a scraped name like =HYPERLINK("http://evil",
# "Call us") or a phone like +1-555-0100 would otherwise run or mangle. A spreadsheet skips leading
# blanks before a formula, so these count after any leading whitespace or control characters too.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_FORMULA_SIGNS = frozenset(FORMULA_PREFIXES)
# Invisible before a formula: control characters and format characters (zero-width space, BOM).
_INVISIBLE = frozenset(("Cc", "Cf"))

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
    then its company (docs/chains.md), then the lead's site (its verdict, contacts and facts)."""
    spread = tuple(f"{s}_{c}" for s in STRATEGIES for c in PAGESPEED_COLUMNS)
    return (
        *LEAD_COLUMNS_WITH_SEEN, *(JOB_COLUMNS if with_job else ()), *spread, *COMPANY_EXPORT_COLUMNS,
        *SITE_EXPORT_COLUMNS,
    )


def spreadsheet_safe(value: Any) -> Any:
    """A cell for a spreadsheet file (CSV, XLSX): text whose first character past leading whitespace
    and control characters is a formula prefix gets a leading ``'``, which spreadsheets take as "this
    is text" and do not show. Anything else is unchanged.

    Every export to a spreadsheet format goes through this one rule; JSONL is data, not a sheet."""
    if isinstance(value, str) and _starts_a_formula(value):
        return "'" + value
    return value


def _starts_a_formula(text: str) -> bool:
    # Reads only the leading blanks and the first character past them.
    for char in text:
        if char in _FORMULA_SIGNS:
            return True
        if not (char.isspace() or unicodedata.category(char) in _INVISIBLE):
            return False
    return False


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
        for name in COMPANY_EXPORT_COLUMNS:
            row[name] = lead.get(name)  # None: not grouped yet (docs/chains.md)
        out.append(row)
    return out


def parse_since(text: str) -> datetime | None:
    """``--new-since`` as a moment: an ISO date (its midnight, UTC) or datetime (UTC when it names no
    zone); ``None`` when ``text`` is neither (it may then be a job id)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def first_seen_after(rows: Iterable[Mapping[str, Any]], cutoff: datetime) -> list[Mapping[str, Any]]:
    """The rows whose business was first seen strictly after ``cutoff`` (rows hold ISO text)."""
    kept = []
    for row in rows:
        seen = row.get("first_seen_at")
        if isinstance(seen, str):
            moment = datetime.fromisoformat(seen)
            if (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) > cutoff:
                kept.append(row)
    return kept


# Excel's own limits: past them a cell is written as plain text rather than a link.
_URL_MAX = 2079
_URLS_MAX = 65_530
_TEXT_MAX = 32_767


def _moment(column: str, value: str) -> datetime | None:
    """A timestamp or date column's ISO text as a naive UTC datetime (Excel has no time zones)."""
    if not (column.endswith("_at") or column == "site_last_modified"):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def write_xlsx(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: str | Path) -> None:
    """One sheet of leads: a frozen header row, then typed cells (numbers, booleans, dates, http(s)
    links); every text cell through :func:`spreadsheet_safe` and written as text, never a formula.

    Blocking (file I/O): run it in a thread from async code."""
    import xlsxwriter

    # Nothing is guessed from text: only the typed writes below decide what a cell is.
    options = {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False}
    workbook = xlsxwriter.Workbook(str(path), options)
    try:
        sheet = workbook.add_worksheet("leads")
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        day = workbook.add_format({"num_format": "yyyy-mm-dd"})
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, bold)
        sheet.freeze_panes(1, 0)
        links = 0
        for r, row in enumerate(rows, start=1):
            for col, name in enumerate(columns):
                value = row.get(name)
                if value is None:
                    continue
                if isinstance(value, bool):
                    sheet.write_boolean(r, col, value)
                elif isinstance(value, int | float) and math.isfinite(value):
                    sheet.write_number(r, col, value)
                elif isinstance(value, str) and (moment := _moment(name, value)) is not None:
                    sheet.write_datetime(r, col, moment, day if len(value) == 10 else when)  # YYYY-MM-DD
                elif (
                    isinstance(value, str)
                    and value.startswith(("http://", "https://"))
                    and len(value) <= _URL_MAX
                    and links < _URLS_MAX
                ):
                    sheet.write_url(r, col, value, string=value[:_TEXT_MAX])
                    links += 1
                else:
                    text = orjson.dumps(value).decode() if isinstance(value, list | dict) else str(value)
                    sheet.write_string(r, col, spreadsheet_safe(text)[:_TEXT_MAX])
    finally:
        workbook.close()
