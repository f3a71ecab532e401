"""Preparing a batch for an upsert, the same way for every backend.

A batch is checked whole before anything is written (one ``ValueError`` naming every bad row),
and deduplicated by key, because one ``INSERT … ON CONFLICT`` cannot touch the same row twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson

from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.logs import redact
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.store.base import (
    DEAD_LETTER_KINDS,
    STRATEGIES,
    TERMINAL_STATUSES,
    JobLead,
    JobStatus,
)

__all__ = [
    "aggregate_status",
    "check_dead_letter_kind",
    "dead_letter_text",
    "json_text",
    "lead_values",
    "prepare_job_leads",
    "prepare_leads",
    "prepare_pagespeed",
]

_SCORES = ("performance", "accessibility", "best_practices", "seo")
_MAX_NAMED = 5


def _reject(what: str, problems: list[str]) -> None:
    if problems:
        shown = "; ".join(problems[:_MAX_NAMED])
        more = f" (and {len(problems) - _MAX_NAMED} more)" if len(problems) > _MAX_NAMED else ""
        raise ValueError(f"{what}: {shown}{more}")


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def prepare_leads(rows: Iterable[Listing]) -> list[Listing]:
    """One listing per ``place_id``: a later sighting's values win, an earlier one fills its gaps."""
    by_id: dict[str, Listing] = {}
    problems: list[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Listing):
            problems.append(f"row {index} is a {type(row).__name__}, not a Listing")
        elif not row.place_id:
            problems.append(f"row {index} ({row.name!r}) has no place_id")
        elif not row.name:
            problems.append(f"row {index} ({row.place_id}) has no name")
        else:
            earlier = by_id.get(row.place_id)
            by_id[row.place_id] = row if earlier is None else row.merged(earlier)
    _reject("leads cannot be stored", problems)
    return list(by_id.values())


_LEAD_GETTER = attrgetter(*LISTING_FIELDS)
_HOURS_AT = LISTING_FIELDS.index("hours")


def lead_values(row: Listing) -> tuple[Any, ...]:
    """The listing's column values in ``LISTING_FIELDS`` order, ``hours`` as JSON text.

    On the writer's hot path: one ``attrgetter`` call, and orjson serialises the tuple pairs
    itself (measured by bench/write.py: half the time of a getattr loop building lists).
    """
    values: tuple[Any, ...] = _LEAD_GETTER(row)
    if row.hours is None:
        return values
    return (*values[:_HOURS_AT], orjson.dumps(row.hours).decode(), *values[_HOURS_AT + 1 :])


def prepare_job_leads(rows: Iterable[JobLead | Sequence[Any]]) -> list[JobLead]:
    """One row per ``place_id``; a later row's known fields win, ``None`` keeps the earlier value."""
    by_id: dict[str, JobLead] = {}
    problems: list[str] = []
    for index, raw in enumerate(rows):
        try:
            row = JobLead(*raw)
        except TypeError:
            problems.append(f"row {index} is not (place_id, rank, qualified, reasons): {raw!r:.80}")
            continue
        bad = _job_lead_problem(row)
        if bad:
            problems.append(f"row {index}: {bad}")
            continue
        row = row._replace(reasons=None if row.reasons is None else list(row.reasons))
        earlier = by_id.get(row.place_id)
        if earlier is not None:
            row = JobLead(
                row.place_id,
                earlier.rank if row.rank is None else row.rank,
                earlier.qualified if row.qualified is None else row.qualified,
                earlier.reasons if row.reasons is None else row.reasons,
            )
        by_id[row.place_id] = row
    _reject("job leads cannot be stored", problems)
    return list(by_id.values())


def _job_lead_problem(row: JobLead) -> str | None:
    if not isinstance(row.place_id, str) or not row.place_id:
        return f"place_id must be a non-empty string, got {row.place_id!r:.80}"
    if row.rank is not None and (isinstance(row.rank, bool) or not isinstance(row.rank, int)):
        return f"rank of {row.place_id} must be an integer, got {row.rank!r:.80}"
    if row.qualified is not None and not isinstance(row.qualified, bool):
        return f"qualified of {row.place_id} must be true, false or None, got {row.qualified!r:.80}"
    if row.reasons is not None and (
        isinstance(row.reasons, str | bytes) or not all(isinstance(r, str) for r in row.reasons)
    ):
        return f"reasons of {row.place_id} must be a list of strings, got {row.reasons!r:.80}"
    return None


def prepare_pagespeed(results: Iterable[PageSpeedResult]) -> list[PageSpeedResult]:
    """One result per ``(place_id, strategy)``, the most recently tested."""
    by_key: dict[tuple[str, str], PageSpeedResult] = {}
    problems: list[str] = []
    for index, row in enumerate(results):
        if not isinstance(row, PageSpeedResult):
            problems.append(f"row {index} is a {type(row).__name__}, not a PageSpeedResult")
            continue
        bad = _pagespeed_problem(row)
        if bad:
            problems.append(f"row {index} ({row.place_id}, {row.strategy}): {bad}")
            continue
        key = (str(row.place_id), row.strategy)
        earlier = by_key.get(key)
        if earlier is None or row.tested_at >= earlier.tested_at:
            by_key[key] = row
    _reject("PageSpeed results cannot be stored", problems)
    return list(by_key.values())


def _pagespeed_problem(row: PageSpeedResult) -> str | None:
    if not isinstance(row.place_id, str) or not row.place_id:
        return "place_id must be a non-empty string"
    if not isinstance(row.tested_at, datetime) or row.tested_at.tzinfo is None:
        return "tested_at must be a datetime with a timezone"
    if row.strategy not in STRATEGIES:
        return f"strategy must be one of {', '.join(STRATEGIES)}"
    for name in _SCORES:
        value = getattr(row, name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 100):
            return f"{name} must be a number from 0 to 100, got {value!r:.80}"
    for name in ("fcp_ms", "lcp_ms", "tbt_ms", "speed_index_ms", "tti_ms", "cls"):
        value = getattr(row, name)
        if value is not None and (not isinstance(value, int | float) or not math.isfinite(value)):
            return f"{name} must be a finite number, got {value!r:.80}"
    return None


def check_dead_letter_kind(kind: str) -> None:
    if kind not in DEAD_LETTER_KINDS:
        raise ValueError(f"dead letter kind must be one of {', '.join(DEAD_LETTER_KINDS)}, got {kind!r:.80}")


def dead_letter_text(payload: str | Mapping[str, Any]) -> str:
    """The payload as stored: text as it came (it may be broken JSON), data as JSON; secrets redacted."""
    if isinstance(payload, str):
        text = payload
    else:
        try:
            text = json_text(payload)
        except TypeError:
            text = repr(payload)
    # PostgreSQL text cannot hold NUL; a fuzzed message may contain one.
    return redact(text.replace("\x00", "\\u0000"))


def aggregate_status(statuses: Sequence[JobStatus]) -> JobStatus:
    """A batch parent's status from its children's."""
    if not statuses:
        return "queued"
    if not all(s in TERMINAL_STATUSES for s in statuses):
        return "queued" if all(s == "queued" for s in statuses) else "running"
    distinct = set(statuses)
    if len(distinct) == 1:
        return statuses[0]
    # Some children succeeded and others did not: the batch did part of its work.
    return "partial" if distinct & {"succeeded", "partial"} else "failed"
