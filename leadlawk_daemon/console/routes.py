"""The operator console's pages, mounted on the daemon's own aiohttp app (see docs/console.md).

Every page is private, like ``/jobs*`` (the guard in :mod:`leadlawk_daemon.http_api`): the admin
token (the bearer header, or the login cookie of :mod:`.login`), or a local client when no token is
set. Only the login form and the static files are public. Pages are rendered by Jinja2 with
autoescaping on, so scraped text (a business named ``<img src=x onerror=…>``) is shown as text;
the one script is a static file, allowed by a Content-Security-Policy that forbids inline script
and style. Every POST is checked by :mod:`.csrf` before it does anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web
from aiohttp_sse import sse_response

from leadlawk_daemon.console.csrf import CSRF_FIELD, Csrf
from leadlawk_daemon.console.forms import SITE_BUILDERS, SITE_STATUSES, FormResult, spec_from_form
from leadlawk_daemon.console.leads import SORTS, LeadFilter, filter_leads, page_of
from leadlawk_daemon.console.login import ConsoleLogin, LoginAttempts, is_console_path
from leadlawk_daemon.console.schedules import schedule_rows
from leadlawk_daemon.console.sources import ConsoleSources
from leadlawk_daemon.fleet.registry import FleetUnavailable
from leadlawk_daemon.http_api import (
    BOUNDARY_KEY,
    FLEET_KEY,
    RETRY_AFTER_S,
    JobRefused,
    add_refusal_page,
    add_token_proof,
    declare_form_routes,
    declare_public,
)
from leadlawk_daemon.intake.admission import QueueFull
from leadlawk_daemon.logs import redact
from leadlawk_daemon.store import Store
from leadlawk_daemon.store.base import TERMINAL_STATUSES, StoreUnavailable
from leadlawk_daemon.store.export import export_columns, write_xlsx

__all__ = ["CSP", "mount_console"]

log = logging.getLogger("leadlawk.console")

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_SOURCES = web.AppKey("leadlawk.console.sources", ConsoleSources)
_CSRF = web.AppKey("leadlawk.console.csrf", Csrf)
_LOGIN = web.AppKey("leadlawk.console.login", ConsoleLogin)
_ATTEMPTS = web.AppKey("leadlawk.console.login_attempts", LoginAttempts)
_STREAMS = web.AppKey("leadlawk.console.streams", set[asyncio.Task[Any]])
_JOBS_PAGE = 50
_EXPORT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# What the live jobs table follows.
_LIVE_EVENTS = ("job.accepted", "job.started", "job.progress", "job.finished")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if is_console_path(request.path):
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)


@web.middleware
async def _unavailable_page(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A console page the daemon cannot serve now (the database down, the pipeline starting, the queue
    full) is an HTML page saying so, with the health page a click away, not the API's JSON."""
    if not is_console_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except (JobRefused, QueueFull, StoreUnavailable) as exc:
        status = exc.status if isinstance(exc, JobRefused) else 429 if isinstance(exc, QueueFull) else 503
        reason = "the database is unavailable" if isinstance(exc, StoreUnavailable) else redact(str(exc))
        response = _render(request, "unavailable.html", {"title": "Not available right now", "reason": reason},
                           status)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response


def _refusal_page(request: web.Request, status: int, error: str) -> web.StreamResponse | None:
    """A refused console request, as a page: plain, with no form and so no CSRF cookie set."""
    if not is_console_path(request.path):
        return None
    reason = html.escape(error)
    return web.Response(
        text=f"<!doctype html><html lang=en><title>Refused</title><h1>Refused</h1><p>{reason}</p></html>",
        status=status, content_type="text/html", charset="utf-8",
    )


def _secure(request: web.Request) -> bool:
    """Cookies are Secure when the console is reached over HTTPS (directly or by a trusted proxy)."""
    return request.app[BOUNDARY_KEY].reached_over_https(request)


def _sources(request: web.Request) -> ConsoleSources:
    return request.app[_SOURCES]


def _store(request: web.Request) -> Store:
    store = _sources(request).store()
    if store is None:
        raise web.HTTPServiceUnavailable(text="the database is not available yet; try again shortly")
    return store


def _render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    """A page; its forms carry the CSRF token, set on the response it is rendered into."""
    response = web.Response(status=status, content_type="text/html", charset="utf-8")
    sources = _sources(request)
    context = {
        "csrf_field": CSRF_FIELD,
        "csrf_token": request.app[_CSRF].token(request, response, secure=_secure(request)),
        "signed_in": request.app.get(_LOGIN) is not None,
        "path": request.path,
        "has_fleet": request.app.get(FLEET_KEY) is not None or sources.settings.redis.url is not None,
        **context,
    }
    response.text = aiohttp_jinja2.render_string(template, request, context)
    return response


async def _checked_form(request: web.Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token and origin are right; 403 otherwise."""
    form = await request.post()
    supplied = form.get(CSRF_FIELD)
    problem = request.app[_CSRF].problem(request, supplied if isinstance(supplied, str) else "")
    if problem is not None:
        log.warning("console POST refused", extra={"path": request.path, "reason": problem})
        raise web.HTTPForbidden(text=f"refused: {problem}")
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _job_row(job: Mapping[str, Any]) -> dict[str, Any]:
    spec = job.get("spec") or {}
    counters = job.get("counters") or {}
    limit = int(spec.get("limit") or 0)
    finished = job["status"] in TERMINAL_STATUSES
    return {
        **job,
        "query": spec.get("query") or ", ".join(spec.get("queries") or []),
        "location": spec.get("location") or ", ".join(spec.get("locations") or []),
        "limit": limit,
        "written": int(counters.get("written", 0)),
        "finished": finished,
        # What a job waits on while it runs; a finished job's last progress may still name it.
        "waiting_on": [] if finished else (job.get("progress") or {}).get("waiting_on") or [],
    }


# -- jobs ------------------------------------------------------------------------------------------


async def _jobs_page(request: web.Request, form: FormResult | None = None, status: int = 200) -> web.Response:
    sources = _sources(request)
    jobs = [_job_row(job) for job in await sources.jobs.list(None)]
    page = page_of(jobs, request.query.get("page"), _JOBS_PAGE)
    values = form.values if form is not None else {"pagespeed": "on", "limit": "20", "strategies": ["mobile"]}
    return _render(request, "jobs.html", {
        "title": "Jobs", "page": page, "form": values, "errors": form.errors if form else {},
        "submitted": request.query.get("submitted"), "site_statuses": SITE_STATUSES, "builders": SITE_BUILDERS,
        "sites_enabled": sources.settings.sites.enabled,
    }, status)


async def jobs_index(request: web.Request) -> web.Response:
    return await _jobs_page(request)


async def submit_job(request: web.Request) -> web.StreamResponse:
    form = await _checked_form(request)
    raw = await request.post()
    checked = {name: [v for v in raw.getall(name, []) if isinstance(v, str)]
               for name in ("strategies", "site_status", "built_with")}
    sources = _sources(request)
    result = spec_from_form(
        form, checked, max_bytes=sources.settings.server.max_body_bytes,
        max_area_km2=sources.settings.maps.max_area_km2,
    )
    if result.spec is None:
        # The form again, each problem beside its field: a page that worked (200), as browsers show
        # it without logging a failed load, not an API answer.
        return await _jobs_page(request, result)
    created = await sources.jobs.submit(result.spec)
    log.info("console job submitted", extra={"job_id": result.spec.id, "new_job": created})
    raise web.HTTPSeeOther(f"/?submitted={result.spec.id}")


async def cancel_job(request: web.Request) -> web.StreamResponse:
    await _checked_form(request)
    job_id = request.match_info["id"]
    if not await _sources(request).jobs.cancel(job_id):
        raise web.HTTPNotFound(text=f"no job {job_id!r} to cancel")
    # Back to the page the button was on (the jobs list or the job), never anywhere else.
    raise web.HTTPSeeOther(_next_path(urlsplit(request.headers.get("Referer", "")).path))


async def job_detail(request: web.Request) -> web.Response:
    job_id = request.match_info["id"]
    job = await _sources(request).jobs.get(job_id)
    if job is None:
        raise web.HTTPNotFound(text=f"no job {job_id!r}")
    lead_filter = LeadFilter.from_query(request.query)
    rows = await _store(request).lead_rows_for_export(job_id=job_id)
    statuses = sorted({str(r["site_status"]) for r in rows if r.get("site_status")})
    kept = filter_leads(rows, lead_filter)
    page = page_of(kept, request.query.get("page"))
    return _render(request, "job.html", {
        "title": f"Job {job_id}", "job": _job_row(job), "spec_json": orjson.dumps(
            job.get("spec"), option=orjson.OPT_INDENT_2).decode(),
        "page": page, "filter": lead_filter, "sorts": SORTS, "site_statuses": statuses, "all_leads": len(rows),
    })


async def job_export(request: web.Request) -> web.StreamResponse:
    from leadlawk_daemon.control import render_rows

    job_id, fmt = request.match_info["id"], request.match_info["fmt"]
    if fmt not in _EXPORT_TYPES:
        raise web.HTTPNotFound()
    kept = await _exported_rows(request, job_id)
    if fmt == "xlsx":
        body = await asyncio.to_thread(_xlsx_bytes, kept)
    else:
        body = render_rows(kept, fmt, with_job=True).encode()
    return _attachment(web.Response(body=body, content_type=_EXPORT_TYPES[fmt]), f"leads-{job_id}.{fmt}")


async def job_crm_export(request: web.Request) -> web.StreamResponse:
    """The same leads as a CRM's import file (docs/crm-export.md), as ``leadlawk export --crm``."""
    from leadlawk_daemon.crm import CRM_FORMATS, render_crm_csv

    job_id, crm = request.match_info["id"], request.match_info["crm"]
    if crm not in CRM_FORMATS:
        raise web.HTTPNotFound()
    body = render_crm_csv(CRM_FORMATS[crm], await _exported_rows(request, job_id))
    return _attachment(web.Response(text=body, content_type="text/csv", charset="utf-8"), f"{crm}-{job_id}.csv")


async def _exported_rows(request: web.Request, job_id: str) -> list[dict[str, Any]]:
    """The very rows ``leadlawk export --job ID [--qualified]`` writes, in the store's own order,
    narrowed by the lead table's filter in the query string."""
    if await _sources(request).jobs.get(job_id) is None:
        raise web.HTTPNotFound(text=f"no job {job_id!r}")
    lead_filter = LeadFilter.from_query(request.query)
    rows = await _store(request).lead_rows_for_export(job_id=job_id, qualified_only=lead_filter.qualified == "yes")
    return [dict(row) for row in rows if lead_filter.keeps(row)]


def _attachment(response: web.Response, filename: str) -> web.Response:
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _xlsx_bytes(rows: list[dict[str, Any]]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="leadlawk-console-") as folder:
        path = Path(folder) / "leads.xlsx"
        write_xlsx(rows, export_columns(True), path)
        return path.read_bytes()


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events from the daemon's own bus: a snapshot of the unfinished jobs, then live.

    Subscribed before the snapshot is read, so nothing between the two is missed. A stream ends when
    the browser goes, or at once when the daemon shuts down (:func:`_end_streams`): an open console
    tab must not hold the HTTP server's shutdown for its whole timeout."""
    sources = _sources(request)
    streams = request.app[_STREAMS]
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    try:
        async with sse_response(request, ping_interval=10) as response:
            # ConnectionResetError: the browser went away.
            with sources.bus.subscribe() as subscription, contextlib.suppress(ConnectionResetError):
                for job in await sources.jobs.list(None):
                    if job["status"] not in TERMINAL_STATUSES:
                        snapshot = _job_event({"type": "snapshot", "job_id": job["id"], **job})
                        await response.send(_dumps(snapshot), event="job")
                while response.is_connected():
                    try:
                        async with asyncio.timeout(10):
                            event = await subscription.get()
                    except TimeoutError:
                        continue  # look again whether the browser is still there
                    if event.get("type") in _LIVE_EVENTS:
                        await response.send(_dumps(_job_event(event)), event="job")
        return response
    finally:
        streams.discard(task)


async def _end_streams(app: web.Application) -> None:
    streams = app[_STREAMS]
    for task in list(streams):
        task.cancel("the daemon is shutting down")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=lambda v: redact(str(v))).decode()


def _job_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the jobs table shows, whichever event carried them."""
    kind = event.get("type")
    status = event.get("status")
    if kind == "job.accepted":
        status = "queued"
    elif kind == "job.started":
        status = "running"
    elif kind == "job.progress":
        status = "queued" if event.get("requeued") else "running"
    progress = event.get("progress") if kind == "snapshot" else event
    waiting = (progress or {}).get("waiting_on") if isinstance(progress, Mapping) else None
    error = event.get("error")
    return {
        "event": kind,
        "job_id": event.get("job_id"),
        "status": status,
        "counters": event.get("counters"),
        "waiting_on": waiting or [],
        "error": redact(str(error)) if error else None,
        "finished": status in TERMINAL_STATUSES,
    }


# -- health, dead letters, fleet ------------------------------------------------------------------


async def health_page(request: web.Request) -> web.Response:
    return _render(request, "health.html", {"title": "Health", "health": _sources(request).health()})


async def dead_letters(request: web.Request) -> web.Response:
    include = request.query.get("all") == "1"
    letters = await _store(request).list_dead_letters(include_replayed=include, limit=1000)
    page = page_of(list(reversed(letters)), request.query.get("page"))
    return _render(request, "dead_letters.html", {
        "title": "Dead letters", "page": page, "include_replayed": include,
        "replayed": request.query.get("replayed"), "failed": request.query.get("failed"),
    })


def _letter_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def dead_letter(request: web.Request) -> web.Response:
    letter = await _store(request).get_dead_letter(_letter_id(request))
    if letter is None:
        raise web.HTTPNotFound(text="no such dead letter")
    payload: Any = letter.payload
    with contextlib.suppress(orjson.JSONDecodeError):
        payload = orjson.dumps(orjson.loads(letter.payload), option=orjson.OPT_INDENT_2).decode()
    return _render(request, "dead_letter.html", {
        "title": f"Dead letter {letter.id}", "letter": letter, "payload": payload,
        "problem": request.query.get("problem"),
    })


async def replay_dead_letter(request: web.Request) -> web.StreamResponse:
    from leadlawk_daemon.control import replay_dead_letter as replay

    await _checked_form(request)
    store = _store(request)
    letter = await store.get_dead_letter(_letter_id(request))
    if letter is None:
        raise web.HTTPNotFound(text="no such dead letter")
    sources = _sources(request)
    if await replay(store, sources.settings, letter) is None:
        sources.notify()
        log.info("dead letter replayed from the console", extra={"dead_letter": letter.id})
        raise web.HTTPSeeOther(f"/console/dead-letters?replayed={letter.id}")
    raise web.HTTPSeeOther(f"/console/dead-letters?failed={letter.id}")


async def schedules_page(request: web.Request) -> web.Response:
    """Every schedule with its next fire time and its last five runs (docs/schedules.md)."""
    rows = await schedule_rows(_store(request))
    return _render(request, "schedules.html", {"title": "Schedules", "rows": rows})


async def deliveries_page(request: web.Request) -> web.Response:
    """Finished jobs' digests to destinations, newest first, with a replay for each (docs/deliveries.md)."""
    from leadlawk_daemon.deliveries.ledger import DELIVERY_STATUSES, ledger_of

    status = request.query.get("status")
    chosen = status if status in DELIVERY_STATUSES else None
    found = await ledger_of(_store(request)).list(status=chosen, limit=1000)
    return _render(request, "deliveries.html", {
        "title": "Deliveries", "page": page_of(found, request.query.get("page")), "status": chosen,
        "statuses": DELIVERY_STATUSES, "replayed": request.query.get("replayed"),
    })


async def replay_delivery(request: web.Request) -> web.StreamResponse:
    from leadlawk_daemon.deliveries.ledger import ledger_of

    await _checked_form(request)
    one = request.match_info["id"]
    ledger = ledger_of(_store(request))
    if await ledger.get(one) is None:
        raise web.HTTPNotFound(text="no such delivery")
    await ledger.replay(one)
    _sources(request).notify()
    log.info("delivery replayed from the console", extra={"delivery_id": one})
    raise web.HTTPSeeOther(f"/console/deliveries?replayed={one}")


async def fleet_page(request: web.Request) -> web.Response:
    """``GET /fleet``'s table, read from the same registry."""
    view = request.app.get(FLEET_KEY)
    daemons: list[dict[str, Any]] | None = None
    problem = None
    if view is not None:
        try:
            daemons = await view.members()
        except FleetUnavailable as exc:
            problem = str(exc)
    return _render(request, "fleet.html", {
        "title": "Fleet", "daemons": daemons, "problem": problem,
        "redis": _sources(request).settings.redis.url is not None,
        "columns": _fleet_columns(daemons or []),
    })


def _fleet_columns(daemons: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for member in daemons:
        columns.extend(key for key in member if key not in columns)
    return columns


# -- signing in ------------------------------------------------------------------------------------


def _next_path(text: str | None) -> str:
    """Only a path of this console: never another site (an open redirect)."""
    if text and text.startswith("/") and not text.startswith("//") and is_console_path(urlsplit(text).path):
        return text
    return "/"


async def login_page(request: web.Request) -> web.Response:
    if request.app.get(_LOGIN) is None:
        raise web.HTTPSeeOther("/")
    return _render(request, "login.html", {"title": "Sign in", "next": _next_path(request.query.get("next")),
                                           "error": None})


async def login(request: web.Request) -> web.StreamResponse:
    console_login = request.app.get(_LOGIN)
    if console_login is None:
        raise web.HTTPSeeOther("/")
    client = request.app[BOUNDARY_KEY].client(request)
    if (wait := request.app[_ATTEMPTS].attempt(client)) is not None:
        log.warning("console sign-in refused: too many attempts", extra={"remote": client})
        raise web.HTTPTooManyRequests(
            text="too many sign-in attempts from this address; wait a minute and try again",
            headers={"Retry-After": LoginAttempts.retry_after(wait)},
        )
    form = await _checked_form(request)
    target = _next_path(form.get("next"))
    if not console_login.token_matches(form.get("token", "")):
        log.warning("console sign-in refused: wrong token", extra={"remote": request.remote})
        return _render(request, "login.html", {"title": "Sign in", "next": target,
                                               "error": "That is not the admin token."}, 401)
    response = web.HTTPSeeOther(target)
    console_login.session_cookie(response, secure=_secure(request))
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await _checked_form(request)
    if (console_login := request.app.get(_LOGIN)) is not None:
        console_login.revoke(request)  # the cookie stops working here, even if a copy of it is kept
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie("leadlawk_session", path="/")
    raise response


# -- mounting --------------------------------------------------------------------------------------


def mount_console(app: web.Application, sources: ConsoleSources) -> None:
    """Add the console's routes to the daemon's app: private (the guard's), but for login and static."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    app[_SOURCES] = sources
    app[_CSRF] = Csrf()
    token = sources.settings.server.admin_token
    if token:
        app[_LOGIN] = ConsoleLogin(token)
        add_token_proof(app, app[_LOGIN])
    app[_ATTEMPTS] = LoginAttempts()
    add_refusal_page(app, _refusal_page)
    app[_STREAMS] = set()
    app.on_response_prepare.append(_security_headers)
    # Inside the guard (which the daemon's app was built with): only an allowed request gets here.
    app.middlewares.append(_unavailable_page)
    app.on_shutdown.append(_end_streams)
    router = app.router
    router.add_get("/", jobs_index)
    router.add_get("/console/jobs/{id}", job_detail)
    router.add_get("/console/jobs/{id}/leads.{fmt}", job_export)
    router.add_get("/console/jobs/{id}/crm/{crm}.csv", job_crm_export)
    router.add_get("/console/events", events)
    router.add_get("/console/health", health_page)
    router.add_get("/console/dead-letters", dead_letters)
    router.add_get("/console/dead-letters/{id}", dead_letter)
    router.add_get("/console/fleet", fleet_page)
    router.add_get("/console/deliveries", deliveries_page)
    router.add_get("/console/schedules", schedules_page)
    # The forms' targets (HTML form bodies, not JSON; CSRF-checked by _checked_form).
    declare_form_routes(
        app,
        router.add_post("/console/jobs", submit_job),
        router.add_post("/console/jobs/{id}/cancel", cancel_job),
        router.add_post("/console/dead-letters/{id}/replay", replay_dead_letter),
        router.add_post("/console/deliveries/{id}/replay", replay_delivery),
        router.add_post("/console/logout", logout),
    )
    # Public: the sign-in form (nothing behind it without the token) and the CSS and script.
    login_form = router.add_post("/console/login", login)
    declare_form_routes(app, login_form)
    declare_public(app, router.add_get("/console/login", login_page), login_form)
    declare_public(app, *router.add_static("/console/static/", HERE / "static"))
