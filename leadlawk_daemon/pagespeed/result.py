"""What one PageSpeed Insights v5 run tells us about one website, and how to read it.

One :class:`PageSpeedResult` per (place_id, strategy), the row of ``pagespeed_results``.
A site Lighthouse could not load is a result too: ``error`` names why (``FAILED_DOCUMENT_REQUEST``
and the like), the scores are ``None``, and for lead qualification the site counts as broken.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AUDITS",
    "CATEGORIES",
    "LIGHTHOUSE_LOAD_ERRORS",
    "FieldData",
    "MalformedResponseError",
    "PageSpeedResult",
    "lighthouse_error_in",
    "parse_response",
]

CATEGORIES: dict[str, str] = {
    "performance": "performance",
    "accessibility": "accessibility",
    "best-practices": "best_practices",
    "seo": "seo",
}
"""Lighthouse category id -> our column."""

AUDITS: dict[str, str] = {
    "first-contentful-paint": "fcp_ms",
    "largest-contentful-paint": "lcp_ms",
    "total-blocking-time": "tbt_ms",
    "speed-index": "speed_index_ms",
    "interactive": "tti_ms",
    "cumulative-layout-shift": "cls",
}
"""Lighthouse audit id -> our column (its ``numericValue``)."""

LIGHTHOUSE_LOAD_ERRORS: frozenset[str] = frozenset(
    {
        "FAILED_DOCUMENT_REQUEST",
        "ERRORED_DOCUMENT_REQUEST",
        "NO_FCP",
        "DNS_FAILURE",
        "NO_DOCUMENT_REQUEST",
        "NOT_HTML",
        "PAGE_HUNG",
        "INSECURE_DOCUMENT_REQUEST",
        "CHROME_INTERSTITIAL_ERROR",
        "NO_LCP",
        "NO_NAVSTART",
        "NO_SPEEDLINE_FRAMES",
        "TARGET_CRASHED",
        "BAD_REQUEST",
    }
)
"""Lighthouse errors that say the *site* could not be loaded: a fact about the lead, not our failure."""

# Possessive: a code can only end where its run of word characters does (the closing \b), so giving
# characters back could never find another match; it only cost a backtrack per character.
_ERROR_CODE = re.compile(r"\b([A-Z][A-Z0-9]*+(?:_[A-Z0-9]++)++)\b")


def lighthouse_error_in(text: str) -> str | None:
    """The first Lighthouse load-error code named in ``text`` (an API error message), if any."""
    for match in _ERROR_CODE.finditer(text):
        if match.group(1) in LIGHTHOUSE_LOAD_ERRORS:
            return match.group(1)
    return None


class MalformedResponseError(ValueError):
    """The service answered 200 with something that is not a PageSpeed result."""


@dataclass(frozen=True, slots=True)
class FieldData:
    """Chrome UX Report data of real visitors (``loadingExperience``), when Google has any."""

    lcp_ms: float | None
    inp_ms: float | None
    cls: float | None
    lcp_category: str | None
    inp_category: str | None
    cls_category: str | None
    overall_category: str | None


@dataclass(frozen=True, slots=True)
class PageSpeedResult:
    place_id: str | None
    strategy: str
    url: str
    tested_at: datetime
    performance: int | None = None
    accessibility: int | None = None
    best_practices: int | None = None
    seo: int | None = None
    fcp_ms: float | None = None
    lcp_ms: float | None = None
    tbt_ms: float | None = None
    speed_index_ms: float | None = None
    tti_ms: float | None = None
    cls: float | None = None
    final_url: str | None = None
    error: str | None = None
    """A Lighthouse load-error code when the site could not be loaded; None for a real result."""
    error_message: str | None = None
    warnings: tuple[str, ...] = ()
    field: FieldData | None = None

    @property
    def site_broken(self) -> bool:
        return self.error is not None

    def to_row(self) -> dict[str, Any]:
        """The ``pagespeed_results`` columns: what the store writes of this result."""
        field = self.field
        return {
            "place_id": self.place_id,
            "strategy": self.strategy,
            **{column: getattr(self, column) for column in (*CATEGORIES.values(), *AUDITS.values())},
            "final_url": self.final_url,
            "error": self.error,
            "field_data": None if field is None else asdict(field),
            "tested_at": self.tested_at,
        }


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResponseError(f"PageSpeed response: {where} is not an object")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _score(category: Any) -> int | None:
    if not isinstance(category, Mapping):
        return None
    score = _number(category.get("score"))
    return None if score is None else round(score * 100)


def _metric(metrics: Mapping[str, Any], key: str) -> tuple[float | None, str | None]:
    entry = metrics.get(key)
    if not isinstance(entry, Mapping):
        return None, None
    category = entry.get("category")
    return _number(entry.get("percentile")), category if isinstance(category, str) else None


def _field_data(experience: Any) -> FieldData | None:
    # Without Chrome UX Report data Google sends loadingExperience with no "metrics" (or omits it).
    if not isinstance(experience, Mapping):
        return None
    metrics = experience.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        return None
    lcp, lcp_cat = _metric(metrics, "LARGEST_CONTENTFUL_PAINT_MS")
    inp, inp_cat = _metric(metrics, "INTERACTION_TO_NEXT_PAINT")
    cls, cls_cat = _metric(metrics, "CUMULATIVE_LAYOUT_SHIFT_SCORE")
    overall = experience.get("overall_category")
    return FieldData(
        lcp_ms=lcp,
        inp_ms=inp,
        # CrUX reports the CLS percentile multiplied by 100 (5 means 0.05).
        cls=None if cls is None else cls / 100.0,
        lcp_category=lcp_cat,
        inp_category=inp_cat,
        cls_category=cls_cat,
        overall_category=overall if isinstance(overall, str) else None,
    )


def parse_response(
    body: Any, *, place_id: str | None, strategy: str, url: str, tested_at: datetime
) -> PageSpeedResult:
    """Read a ``runPagespeed`` 200 answer; raises :class:`MalformedResponseError` if it is not one."""
    root = _mapping(body, "the body")
    lighthouse = _mapping(root.get("lighthouseResult"), "lighthouseResult")
    categories = lighthouse.get("categories")
    audits = lighthouse.get("audits")
    categories = categories if isinstance(categories, Mapping) else {}
    audits = audits if isinstance(audits, Mapping) else {}
    values: dict[str, Any] = {}
    for lh_id, column in CATEGORIES.items():
        values[column] = _score(categories.get(lh_id))
    for lh_id, column in AUDITS.items():
        audit = audits.get(lh_id)
        values[column] = _number(audit.get("numericValue")) if isinstance(audit, Mapping) else None
    error: str | None = None
    error_message: str | None = None
    runtime = lighthouse.get("runtimeError")
    if (
        isinstance(runtime, Mapping)
        and isinstance(runtime.get("code"), str)
        and runtime["code"] != "NO_ERROR"
    ):
        error = str(runtime["code"])
        message = runtime.get("message")
        error_message = message if isinstance(message, str) else None
    elif not categories:
        raise MalformedResponseError(
            "PageSpeed response: lighthouseResult has neither categories nor runtimeError"
        )
    warnings_raw = lighthouse.get("runWarnings")
    run_warnings = (
        tuple(w for w in warnings_raw if isinstance(w, str)) if isinstance(warnings_raw, list) else ()
    )
    final_url = lighthouse.get("finalUrl") or lighthouse.get("finalDisplayedUrl")
    return PageSpeedResult(
        place_id=place_id,
        strategy=strategy,
        url=url,
        tested_at=tested_at,
        final_url=final_url if isinstance(final_url, str) else None,
        error=error,
        error_message=error_message,
        warnings=run_warnings,
        field=_field_data(root.get("loadingExperience")),
        **values,
    )
