"""Operator commands: submit, jobs, status, cancel, export, dlq.

They talk to the same database the daemons use (``DATABASE_URL``), so they work whether or not a
daemon is running; ``submit`` goes through Redis (the durable stream) when ``REDIS_URL`` is set
and to the local daemon's ``POST /jobs`` otherwise. A cancel is written to the database: the
daemon holding the job sees it at its next progress tick (every 2 s) and stops within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import aiohttp
import orjson

from leadlawk_daemon.jobs.lifecycle import JobLifecycle
from leadlawk_daemon.jobspec import DEFAULT_MAX_AREA_KM2, JobSpec, JobSpecError, parse_job_spec
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store, open_store_from_settings
from leadlawk_daemon.store.base import JOB_STATUSES, TERMINAL_STATUSES, DeadLetter, Job
from leadlawk_daemon.terminal import JobProgressBar, is_terminal, paint_status

__all__ = [
    "ControlError",
    "cancel_job",
    "export_leads",
    "format_of",
    "job_summary",
    "list_dead_letters",
    "list_jobs",
    "render_rows",
    "replay_dead_letter",
    "replay_dead_letters",
    "show_dead_letter",
    "show_job",
    "spec_from_options",
    "submit_job",
    "write_export",
]


if TYPE_CHECKING:
    from leadlawk_daemon.intake.events import EventType


class ControlError(Exception):
    """A command could not do what was asked; its text is the one line the user sees."""


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[Store]:
    async with open_store_from_settings(settings.database, migrate=True) as store:
        yield store


class _Unheard:
    """The event sink without Redis: nobody can follow a job then, so there is no one to tell."""

    def publish(self, type: EventType, /, **context: Any) -> None:
        pass


@asynccontextmanager
async def _lifecycle(settings: Settings) -> AsyncIterator[JobLifecycle]:
    """The job lifecycle the daemons use, over the store and (``REDIS_URL`` set) the daemons' event
    channel: a status the CLI changes is announced as if a daemon had changed it."""
    async with _store(settings) as store:
        if not settings.redis.url:
            yield JobLifecycle(store, _Unheard())
            return
        import redis.asyncio as aioredis

        from leadlawk_daemon.intake.events import EventPublisher

        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            async with EventPublisher(client, settings.redis.prefix, capacity=settings.redis.events_buffer) as events:
                yield JobLifecycle(store, events)
        finally:
            await client.aclose()


def spec_from_options(
    query: str,
    *,
    location: str | None = None,
    limit: int | None = None,
    min_rating: float | None = None,
    min_reviews: int | None = None,
    website: str | None = None,
    pagespeed: bool = True,
    strategies: Sequence[str] | None = None,
    max_score: int | None = None,
    max_runtime_s: int | None = None,
    job_id: str | None = None,
    max_bytes: int = 65_536,
    coverage: str | None = None,
    area: dict[str, Any] | None = None,
    max_area_km2: float = DEFAULT_MAX_AREA_KM2,
    site: Mapping[str, Any] | None = None,
    priority: int | None = None,
    independent_only: bool = False,
    max_branches: int | None = None,
    include_addresses: bool = False,
    notify: Sequence[str] | None = None,
    destinations: frozenset[str] | None = None,
) -> JobSpec:
    raw: dict[str, Any] = {"query": query}
    optional = {
        "location": location,
        "limit": limit,
        "min_rating": min_rating,
        "min_reviews": min_reviews,
        "website": website,
        "max_runtime_s": max_runtime_s,
        "id": job_id,
        "coverage": coverage,
        "area": area,
        "site": dict(site) if site else None,
        "priority": priority,
        "independent_only": independent_only or None,
        "max_branches": max_branches,
        "include_addresses": include_addresses or None,
        "notify": list(notify) if notify else None,
    }
    raw |= {key: value for key, value in optional.items() if value is not None}
    psi: dict[str, Any] = {"enabled": pagespeed}
    if strategies:
        psi["strategies"] = list(strategies)
    if max_score is not None:
        psi["max_score"] = max_score
    raw["pagespeed"] = psi
    try:
        return parse_job_spec(raw, max_bytes, max_area_km2=max_area_km2, destinations=destinations)
    except JobSpecError as exc:
        raise ControlError("invalid job: " + "; ".join(exc.problems)) from None


def _http_headers(settings: Settings) -> dict[str, str]:
    token = settings.server.admin_token
    return {"Authorization": f"Bearer {token}"} if token else {}


async def submit_job(settings: Settings, spec: JobSpec, *, wait: bool, out: TextIO) -> int:
    """Submit ``spec``; with ``wait``, follow it to its end. The exit status."""
    if wait:
        async with _store(settings) as store:
            known = await store.get_job(spec.id)
        if known is not None:
            # A known id runs once and announces nothing new: follow the job that exists.
            out.write(f"{spec.id} was submitted before ({known.status}); following it\n")
            return await _follow_stored(settings, spec.id, out)
    if settings.redis.url:
        import redis.asyncio as aioredis

        from leadlawk_daemon.intake.events import follow_events
        from leadlawk_daemon.intake.submit import submit_to_stream

        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            if not wait:
                job_id = await submit_to_stream(
                    client, settings.redis.prefix, spec.to_dict(), max_area_km2=settings.maps.max_area_km2
                )
                out.write(f"submitted {job_id}\n")
                return 0
            async with follow_events(client, settings.redis.prefix, spec.id) as events:
                job_id = await submit_to_stream(
                    client, settings.redis.prefix, spec.to_dict(), max_area_km2=settings.maps.max_area_km2
                )
                out.write(f"submitted {job_id}\n")
                with contextlib.ExitStack() as stack:
                    bar = stack.enter_context(JobProgressBar(out)) if is_terminal(out) else None
                    async for event in events:
                        if bar is not None:
                            # A progress event carries its progress fields (limit, waiting_on) flat.
                            bar.update({"status": event.get("status", "running"), "counters": event.get("counters"),
                                        "progress": event})
                        else:
                            out.write(_event_line(event) + "\n")
                            out.flush()
                        if event.get("type") == "job.finished":
                            break
                    else:
                        return 1
                for line in limited_view_lines(event) if bar is not None else ():
                    out.write(line + "\n")
                return 0 if event.get("status") == "succeeded" else 1
        finally:
            await client.aclose()
        return 1
    base = f"http://127.0.0.1:{settings.server.port}"
    try:
        async with aiohttp.ClientSession(headers=_http_headers(settings)) as http:
            async with http.post(f"{base}/jobs", data=orjson.dumps(spec.to_dict()),
                                 headers={"Content-Type": "application/json"}) as response:
                body = await response.json(content_type=None)
                if response.status != 202:
                    raise ControlError(f"the daemon refused the job ({response.status}): {body}")
            out.write(f"submitted {spec.id}\n")
            if not wait:
                return 0
            return await _follow_stored(settings, spec.id, out)
    except aiohttp.ClientConnectionError:
        raise ControlError(
            f"no daemon answers at {base} and REDIS_URL is not set: start `leadlawk run` or set REDIS_URL"
        ) from None


async def _follow_stored(settings: Settings, job_id: str, out: TextIO) -> int:
    """Poll the job in the database until it ends, printing each change of its line."""
    last = None
    async with _store(settings) as store:
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(JobProgressBar(out)) if is_terminal(out) else None
            while True:
                job = await store.get_job(job_id)
                if job is None:
                    raise ControlError(f"job {job_id} is not in the database {settings.database.url.split('@')[-1]}")
                if bar is not None:
                    bar.update(job.to_dict())
                else:
                    line = _job_line(job.to_dict())
                    if line != last:
                        out.write(line + "\n")
                        out.flush()
                        last = line
                if job.status in TERMINAL_STATUSES:
                    return 0 if job.status == "succeeded" else 1
                await asyncio.sleep(1.0)


def _event_line(event: Mapping[str, Any]) -> str:
    counters = event.get("counters") or {}
    shown = " ".join(f"{k}={v}" for k, v in counters.items())
    extra = f" status={event['status']}" if "status" in event else ""
    if event.get("maps_view") is not None:
        extra += f" maps_view={event['maps_view']}"
    line = f"{event.get('type', '?')}{extra} {shown}".rstrip()
    if event.get("type") == "job.finished":
        line = "\n".join([line, *limited_view_lines(event)])
    return line


def limited_view_lines(progress: Mapping[str, Any]) -> list[str]:
    """What Google's limited view cost a job (its progress, or its job.finished event): nothing
    when it saw the full view."""
    lines: list[str] = []
    view = progress.get("maps_view")
    if view in ("limited", "mixed"):
        lines.append(
            f"Google Maps showed its limited view ({view}): review counts hidden, some businesses missing "
            "(docs/limited-view.md)"
        )
    skipped = progress.get("filters_not_applied")
    if isinstance(skipped, Mapping) and skipped.get("count"):
        lines.append(f"{skipped['count']} lead(s) whose filters could not be applied: {skipped.get('reason')}")
    return lines


def _job_line(job: Mapping[str, Any]) -> str:
    counters = job.get("counters") or {}
    shown = " ".join(f"{k}={v}" for k, v in counters.items())
    return f"{job.get('id')} {job.get('status')} {shown}".rstrip()


async def list_jobs(settings: Settings, status: str | None, out: TextIO) -> int:
    if status is not None and status not in JOB_STATUSES:
        raise ControlError(f"--status must be one of {', '.join(JOB_STATUSES)} (got {status!r})")
    async with _store(settings) as store:
        jobs = await store.list_jobs(status=status, limit=500)
    header = f"{'id':<40} {'status':<10} {'found':>6} {'qualif':>6} {'enrich':>6} {'written':>7} {'failed':>6}  created"
    out.write(header + "\n")
    colour = is_terminal(out)
    for job in jobs:
        status = paint_status(job.status, f"{job.status:<10}") if colour else f"{job.status:<10}"
        out.write(
            f"{job.id:<40} {status} {job.found:>6} {job.qualified:>6} {job.enriched:>6} "
            f"{job.written:>7} {job.failed:>6}  {job.created_at.isoformat(timespec='seconds')}\n"
        )
    return 0


def _show(record: Job | DeadLetter | None, missing: str, out: TextIO) -> int:
    if record is None:
        raise ControlError(missing)
    out.write(orjson.dumps(record.to_dict(), option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    return 0


async def show_job(settings: Settings, job_id: str, out: TextIO, *, as_json: bool = False) -> int:
    """A readable summary of the job; ``as_json``: its whole record, as ``GET /jobs/{id}`` has it."""
    async with _store(settings) as store:
        job = await store.get_job(job_id)
    if as_json or job is None:
        return _show(job, f"no job {job_id!r}", out)
    out.write(job_summary(job, colour=is_terminal(out)))
    return 0


def job_summary(job: Job, *, colour: bool = False) -> str:
    """``leadlawk status ID`` for a person: what the job is, where it stands, what holds it up."""
    spec = job.spec or {}
    progress = job.progress or {}
    what = str(spec.get("query", "?")) + (f" in {spec['location']}" if spec.get("location") else "")
    status = paint_status(job.status) if colour else job.status
    lines = [
        f"job       {job.id}" + (f" (part of {job.parent_id})" if job.parent_id else ""),
        f"query     {what}" + (f", limit {spec['limit']}" if spec.get("limit") else ""),
        f"status    {status}" + (f" (attempt {job.attempts})" if job.attempts > 1 else ""),
        f"leads     {job.found} found, {job.enriched} enriched, {job.qualified} qualified, {job.written} written"
        + (f", {job.failed} failed" if job.failed else ""),
    ]
    area = progress.get("area")
    if isinstance(area, Mapping):
        lines.append(
            f"area      {area.get('cells_done', 0)} cell(s) done, {area.get('cells_pending', 0)} pending, "
            f"{area.get('found', 0)} found"
        )
    waiting = progress.get("waiting_on") or []
    if waiting:
        lines.append(f"waiting   on {', '.join(map(str, waiting))}")
    if progress.get("maps_view") is not None:
        lines.append(f"maps view {progress['maps_view']}")
    exits = progress.get("egress")
    if isinstance(exits, list) and exits:
        # The Google Maps exits (docs/egress-pool.md): by name, the open ones with why.
        shown = [
            f"{e.get('egress')} {e.get('state')}"
            + (f" ({e['reason']})" if e.get("state") != "closed" and e.get("reason") else "")
            for e in exits
            if isinstance(e, Mapping)
        ]
        lines.append(f"exits     {', '.join(shown)}")
    if job.error:
        lines.append(f"error     {job.error}")
    for name, moment in (("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at)):
        if moment is not None:
            lines.append(f"{name:<9} {moment.isoformat(timespec='seconds')}")
    if job.started_at is not None:
        end = job.finished_at or datetime.now(job.started_at.tzinfo)
        lines.append(f"{'running' if job.finished_at is None else 'took':<9} {_duration(end - job.started_at)}")
    lines.extend(limited_view_lines(progress))
    return "".join(line + "\n" for line in lines)


def _duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}h " if hours else "") + f"{rest // 60}m {rest % 60:02d}s"


async def cancel_job(settings: Settings, job_id: str, out: TextIO) -> int:
    async with _lifecycle(settings) as lifecycle:
        if not await lifecycle.cancel(job_id):
            job = await lifecycle.store.get_job(job_id)
            if job is None:
                raise ControlError(f"no job {job_id!r}")
            raise ControlError(f"job {job_id} already {job.status}: nothing to cancel")
    out.write(f"cancelling {job_id}: the daemon running it stops within 5 s\n")
    return 0


_FORMATS_BY_EXTENSION = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx", ".csv": "csv"}


async def export_leads(
    settings: Settings,
    *,
    job_id: str | None,
    qualified: bool,
    fmt: str | None,
    output: str | None,
    out: TextIO,
    new_since: str | None = None,
    crm: str | None = None,
) -> int:
    if crm is not None:
        _check_crm(crm, fmt)
    else:
        if fmt is None:
            fmt = format_of(output) if output else "csv"
        if fmt not in ("csv", "jsonl", "xlsx"):
            raise ControlError(f"--format must be csv, jsonl or xlsx (got {fmt!r})")
        if fmt == "xlsx" and not output:
            raise ControlError("an xlsx export is a file: give -o FILE.xlsx")
    async with _store(settings) as store:
        if job_id is not None and await store.get_job(job_id) is None:
            raise ControlError(f"no job {job_id!r}")
        cutoff = None if new_since is None else await _since(store, new_since)
        if crm is not None:
            # A chain is one company where the CRM keeps one: the store is grouped first.
            await store.regroup_companies()
        rows = await store.lead_rows_for_export(job_id=job_id, qualified_only=qualified)
    if cutoff is not None:
        from leadlawk_daemon.store.export import first_seen_after

        rows = [dict(row) for row in first_seen_after(rows, cutoff)]
    if crm is not None:
        return await write_crm(crm, rows, output, out)
    assert fmt is not None
    if output:
        await write_export(rows, output, fmt=fmt, with_job=job_id is not None)
        sys.stderr.write(f"wrote {len(rows)} lead(s) to {output}\n")
    else:
        out.write(render_rows(rows, fmt, with_job=job_id is not None))
    return 0


def _check_crm(crm: str, fmt: str | None) -> None:
    from leadlawk_daemon.crm import CRM_FORMATS

    if crm not in CRM_FORMATS:
        raise ControlError(f"--crm must be one of {', '.join(CRM_FORMATS)} (got {crm!r})")
    if fmt not in (None, "csv"):
        raise ControlError(f"--crm writes the CSV file the CRM's importer takes (not --format {fmt})")


async def write_crm(crm: str, rows: list[dict[str, Any]], output: str | None, out: TextIO) -> int:
    """``export --crm``: the import file of that CRM (docs/crm-export.md), to ``output`` or ``out``."""
    from leadlawk_daemon.crm import CRM_FORMATS, crm_records, render_crm_csv

    text = render_crm_csv(CRM_FORMATS[crm], rows)
    if output:
        await asyncio.to_thread(Path(output).write_text, text, encoding="utf-8", newline="")
        sys.stderr.write(f"wrote {len(crm_records(CRM_FORMATS[crm], rows))} {crm} record(s) to {output}\n")
    else:
        out.write(text)
    return 0


def format_of(output: str) -> str:
    """An export file's format by its extension: ``.xlsx``, ``.jsonl``/``.ndjson``/``.json``, else CSV."""
    return _FORMATS_BY_EXTENSION.get(Path(output).suffix.lower(), "csv")


async def write_export(rows: list[dict[str, Any]], output: str, *, fmt: str | None = None, with_job: bool) -> None:
    """Write export rows to the file ``output`` (``export -o``, ``collect -o``), in ``fmt`` or by its extension."""
    fmt = fmt or format_of(output)
    if fmt == "xlsx":
        from leadlawk_daemon.store import export_columns
        from leadlawk_daemon.store.export import write_xlsx

        await asyncio.to_thread(write_xlsx, rows, export_columns(with_job), output)
    else:
        await asyncio.to_thread(Path(output).write_text, render_rows(rows, fmt, with_job=with_job), encoding="utf-8")


async def _since(store: Store, text: str) -> datetime:
    """``--new-since``: a job id names the moment that job started (its creation if it never started),
    so ``--new-since TONIGHTS_JOB`` is what that job found first plus anything later; else an ISO
    date or datetime."""
    from leadlawk_daemon.store.export import parse_since

    job = await store.get_job(text)
    if job is not None:
        return job.started_at or job.created_at
    moment = parse_since(text)
    if moment is None:
        raise ControlError(f"--new-since: no job {text!r}, and it is not an ISO date (2026-11-29) or datetime")
    return moment


def render_rows(rows: list[dict[str, Any]], fmt: str, with_job: bool) -> str:
    from leadlawk_daemon.store import export_columns

    if fmt == "jsonl":
        return "".join(orjson.dumps(row, default=str).decode() + "\n" for row in rows)
    buffer = io.StringIO()
    columns = list(export_columns(with_job))
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    from leadlawk_daemon.store.export import spreadsheet_safe

    if isinstance(value, list | dict):
        value = orjson.dumps(value).decode()
    return spreadsheet_safe(value)


async def list_dead_letters(settings: Settings, *, kind: str | None, include_replayed: bool, out: TextIO) -> int:
    async with _store(settings) as store:
        letters = await store.list_dead_letters(kind=kind, include_replayed=include_replayed, limit=500)  # type: ignore[arg-type]
    out.write(f"{'id':>6} {'kind':<8} {'attempts':>8}  {'created':<20} reason\n")
    for letter in letters:
        reason = letter.reason.replace("\n", " ")
        out.write(
            f"{letter.id:>6} {letter.kind:<8} {letter.attempts:>8}  "
            f"{letter.created_at.isoformat(timespec='seconds'):<20} {reason[:100]}\n"
        )
    return 0


async def show_dead_letter(settings: Settings, letter_id: int, out: TextIO) -> int:
    async with _store(settings) as store:
        return _show(await store.get_dead_letter(letter_id), f"no dead letter {letter_id}", out)


async def replay_dead_letters(settings: Settings, letter_id: int | None, out: TextIO) -> int:
    """Replay one dead letter (or all not yet replayed). A replay that fails again stays a dead letter
    with its attempt count raised and the new reason; the exit status is 1 if any failed."""
    failed = 0
    async with _store(settings) as store:
        if letter_id is None:
            letters = await store.list_dead_letters(include_replayed=False, limit=10_000)
        else:
            one = await store.get_dead_letter(letter_id)
            if one is None:
                raise ControlError(f"no dead letter {letter_id}")
            letters = [one]
        for letter in letters:
            problem = await replay_dead_letter(store, settings, letter)
            if problem is None:
                out.write(f"{letter.id}: replayed\n")
            else:
                out.write(f"{letter.id}: failed again: {problem}\n")
                failed += 1
    return 1 if failed else 0


async def replay_dead_letter(store: Store, settings: Settings, letter: DeadLetter) -> str | None:
    """Replay one letter (``dlq replay``, the console) and record how it went: replayed, or kept with
    its attempts raised and the new reason, which is returned."""
    problem = await _replay(store, settings, letter)
    if problem is None:
        await store.mark_replayed(letter.id)
    else:
        await store.bump_dead_letter(letter.id, problem)
    return problem


async def _replay(store: Store, settings: Settings, letter: DeadLetter) -> str | None:
    """Put the letter's work back where the daemon picks it up; the new reason if it cannot be."""
    payload: Any = letter.payload
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        decoded = payload
    if letter.kind == "message":
        raw = decoded.get("spec", decoded) if isinstance(decoded, dict) else payload
        try:
            spec = parse_job_spec(raw, settings.server.max_body_bytes)
        except JobSpecError as exc:
            return "invalid job spec: " + "; ".join(exc.problems)
        if spec.is_batch:
            await store.create_batch(spec.id, spec.to_dict(), [(c.id, c.to_dict()) for c in spec.children()])
        else:
            await store.create_job(spec.id, spec.to_dict())  # an id stored meanwhile is not run twice
        return None
    if letter.kind in ("job", "lead"):
        # The job that could not finish (or whose lead could not be enriched or written) runs again;
        # its run skips what is stored and redoes only what is missing.
        job_id = decoded.get("job_id") if isinstance(decoded, dict) else None
        if not job_id:
            return f"a {letter.kind} dead letter needs its job_id to be replayed"
        # A requeue announces nothing (the job's next run does): no event channel is needed.
        if not await JobLifecycle(store, _Unheard()).requeue(str(job_id)):
            job = await store.get_job(str(job_id))
            state = "unknown" if job is None else job.status
            return f"job {job_id} cannot be requeued (it is {state})"
        return None
    if letter.kind == "delivery":
        from leadlawk_daemon.deliveries.command import delivery_letter_replay

        return await delivery_letter_replay(store, letter.payload)
    return f"unknown dead-letter kind {letter.kind!r}"
