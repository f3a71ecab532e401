"""A job's leads for the console: the export rows, filtered, sorted and cut into pages.

The rows are :meth:`Store.lead_rows_for_export`'s, the very rows ``leadlawk export`` writes, so a
download of the filtered table is the export of the same leads. A 10,000-lead job is filtered in
memory (a few ms) but rendered a page at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

__all__ = ["PAGE_SIZE", "SORTS", "LeadFilter", "LeadPage", "filter_leads", "page_of"]

PAGE_SIZE = 50
# Sortable columns: the name in the query string -> the export column.
SORTS = {
    "rank": "rank",
    "name": "name",
    "rating": "rating",
    "reviews": "review_count",
    "mobile": "mobile_performance",
    "site": "site_status",
}
_YES_NO = ("", "yes", "no")


def _float(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class LeadFilter:
    qualified: str = ""  # "", "yes", "no"
    website: str = ""  # "", "yes", "no"
    score_min: float | None = None
    score_max: float | None = None
    site_status: str = ""
    sort: str = "rank"
    descending: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LeadFilter:
        sort = query.get("sort", "rank")
        return cls(
            qualified=q if (q := query.get("qualified", "")) in _YES_NO else "",
            website=w if (w := query.get("website", "")) in _YES_NO else "",
            score_min=_float(query.get("score_min")),
            score_max=_float(query.get("score_max")),
            site_status=query.get("site_status", "")[:20],
            sort=sort if sort in SORTS else "rank",
            descending=query.get("order") == "desc",
        )

    def query(self, **changes: Any) -> str:
        """This filter as a query string, with ``changes`` (``page``, ``sort``, ``order``) applied."""
        params: dict[str, Any] = {
            "qualified": self.qualified,
            "website": self.website,
            "score_min": "" if self.score_min is None else f"{self.score_min:g}",
            "score_max": "" if self.score_max is None else f"{self.score_max:g}",
            "site_status": self.site_status,
            "sort": self.sort,
            "order": "desc" if self.descending else "",
        }
        params.update(changes)
        return urlencode({k: v for k, v in params.items() if v not in ("", None)})

    def only_qualified(self) -> bool:
        """True when the filter is exactly ``leadlawk export --qualified`` (nothing else narrows it)."""
        return (self.qualified, self.website, self.score_min, self.score_max, self.site_status) == (
            "yes", "", None, None, ""
        )

    def keeps(self, row: Mapping[str, Any]) -> bool:
        if self.qualified and bool(row.get("qualified")) != (self.qualified == "yes"):
            return False
        if self.website and bool(row.get("website")) != (self.website == "yes"):
            return False
        score = row.get("mobile_performance")
        if self.score_min is not None and (score is None or score < self.score_min):
            return False
        if self.score_max is not None and (score is None or score > self.score_max):
            return False
        return not (self.site_status and row.get("site_status") != self.site_status)


def filter_leads(rows: Sequence[Mapping[str, Any]], lead_filter: LeadFilter) -> list[Mapping[str, Any]]:
    kept = [row for row in rows if lead_filter.keeps(row)]
    column = SORTS[lead_filter.sort]

    def key(row: Mapping[str, Any]) -> tuple[int, Any]:
        value = row.get(column)
        if value is None:
            return (1, 0)  # unknowns last, whichever the order
        return (0, value.casefold() if isinstance(value, str) else value)

    known = sorted((r for r in kept if r.get(column) is not None), key=key, reverse=lead_filter.descending)
    return known + [r for r in kept if r.get(column) is None]


Row = TypeVar("Row")


@dataclass
class LeadPage(Generic[Row]):
    rows: list[Row]
    page: int
    pages: int
    total: int
    site_statuses: list[str] = field(default_factory=list)


def page_of(rows: Sequence[Row], page_text: str | None, size: int = PAGE_SIZE) -> LeadPage[Row]:
    pages = max(1, math.ceil(len(rows) / size))
    try:
        page = int(page_text or "1")
    except ValueError:
        page = 1
    page = min(max(page, 1), pages)
    return LeadPage(list(rows[(page - 1) * size: page * size]), page, pages, len(rows))
