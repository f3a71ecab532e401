"""What a digest holds: a finished job's summary and its new qualified leads, as every destination sends it.

The summary is fixed when the delivery is made (:func:`job_summary`, stored on the row), the leads'
place ids too; their facts are read at send time as ``leadlawk export`` rows, so a file, an email
attachment and a webhook page carry the same columns as an export of the same leads, through the
same writers and the same spreadsheet neutralisation (:mod:`leadlawk_daemon.store.export`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadlawk_daemon.deliveries.ledger import Delivery
from leadlawk_daemon.store.base import Job, Store

__all__ = ["Digest", "digest_rows", "file_bytes", "file_bytes_async", "job_summary", "pages"]


def job_summary(job: Job) -> dict[str, Any]:
    """What every digest says about its job: its counters and what Google's limited view cost it.
    ``new`` is added when the delivery is made (what the schedule had not had before)."""
    spec, progress = job.spec, job.progress or {}
    return {
        "job_id": job.id,
        "status": job.status,
        "query": spec.get("query") or spec.get("queries"),
        "location": spec.get("location") or spec.get("locations"),
        "found": job.found,
        "qualified": job.qualified,
        "failed": job.failed,
        "maps_view": progress.get("maps_view"),
        "filters_not_applied": progress.get("filters_not_applied"),
        "error": job.error,
        "finished_at": None if job.finished_at is None else job.finished_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Digest:
    """One delivery ready to send: its row, and its leads as export rows, in rank order."""

    delivery: Delivery
    rows: Sequence[Mapping[str, Any]]

    @property
    def summary(self) -> dict[str, Any]:
        return {**self.delivery.summary, "schedule_id": self.delivery.schedule_id}


async def digest_rows(store: Store, delivery: Delivery) -> list[dict[str, Any]]:
    """The export rows of ``delivery``'s leads (a batch's: from its children), in its order."""
    wanted = set(delivery.leads)
    if not wanted:
        return []
    jobs = [delivery.job_id, *(child.id for child in await store.list_jobs(parent_id=delivery.job_id, limit=10_000))]
    found: dict[str, dict[str, Any]] = {}
    for job_id in jobs:
        for row in await store.lead_rows_for_export(job_id=job_id, qualified_only=True):
            place = row.get("place_id")
            if place in wanted and place not in found:
                found[str(place)] = row
    return [found[place] for place in delivery.leads if place in found]


def pages(rows: Sequence[Mapping[str, Any]], size: int) -> list[Sequence[Mapping[str, Any]]]:
    """The leads cut into pages of ``size``; an empty digest is one page (its summary)."""
    if not rows:
        return [[]]
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def file_bytes(rows: Sequence[Mapping[str, Any]], fmt: str) -> bytes:
    """The leads as an export file (csv, jsonl or xlsx), through the export's own writers.

    Blocking (XLSX is written to a file and read back): call it in a thread."""
    from leadlawk_daemon.control import render_rows  # the export's CSV/JSONL writer
    from leadlawk_daemon.store import export_columns
    from leadlawk_daemon.store.export import write_xlsx

    if fmt in ("csv", "jsonl"):
        return render_rows([dict(r) for r in rows], fmt, with_job=True).encode("utf-8")
    if fmt != "xlsx":
        raise ValueError(f"not a digest file format: {fmt!r}")
    handle, name = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        write_xlsx(rows, export_columns(True), name)
        return Path(name).read_bytes()
    finally:
        os.unlink(name)


async def file_bytes_async(rows: Sequence[Mapping[str, Any]], fmt: str) -> bytes:
    return await asyncio.to_thread(file_bytes, rows, fmt)
