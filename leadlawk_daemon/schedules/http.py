"""``/schedules``: schedules over HTTP, private like ``/jobs*``.

Mounted on the daemon's app by :mod:`leadlawk_daemon.assembly`; the app's guard
(:mod:`leadlawk_daemon.http_api`) makes every route here private (the admin token, or a local
client when none is set), refuses cross-site requests and takes JSON bodies only, and answers 503
with ``Retry-After`` while the database is unreachable.

| method, path | answer |
| --- | --- |
| ``GET /schedules`` | ``{"schedules": [...]}``, each with ``next_due_at`` and its last five fires |
| ``POST /schedules`` | a definition; 201 with the schedule, 400 with every problem, 409 for an id taken |
| ``GET /schedules/{id}`` | the schedule and its last fires (``?fires=N``, at most 100) |
| ``PUT /schedules/{id}`` | a new definition for it; 200, 400, 404 |
| ``DELETE /schedules/{id}`` | 200 ``{"removed": id}``; 404 |
| ``POST /schedules/{id}/pause``, ``/resume`` | 200 with the schedule; 404 |
| ``POST /schedules/{id}/run`` | fire once now: 202 ``{"job_id": …}``; 404; 400 if its spec no longer validates |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from leadlawk_daemon.schedules.book import ScheduleBook, ScheduleExists, ScheduleView
from leadlawk_daemon.schedules.schedule import ScheduleError

__all__ = ["mount_schedules"]

MAX_FIRES_SHOWN = 100


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _missing(schedule_id: str) -> web.Response:
    return _json({"error": f"no schedule {schedule_id!r}"}, 404)


def mount_schedules(app: web.Application, book: Callable[[], ScheduleBook | None], wake: Callable[[], None]) -> None:
    """Add the ``/schedules`` routes; ``book`` is the live store's book (None while the database is
    not open yet: 503); ``wake`` tells this daemon's firing loop, and its pipeline, to look again."""

    def need() -> ScheduleBook:
        found = book()
        if found is None:
            raise web.HTTPServiceUnavailable(
                text='{"error": "the database is not available yet"}', content_type="application/json"
            )
        return found

    async def definition(request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(
                text='{"error": "invalid JSON", "problems": ["the body is not JSON"]}', content_type="application/json"
            ) from None

    def shown(view: ScheduleView | None, schedule_id: str, status: int = 200) -> web.Response:
        return _missing(schedule_id) if view is None else _json(view.to_dict(), status)

    async def list_all(_: web.Request) -> web.Response:
        return _json({"schedules": [view.to_dict() for view in await need().list()]})

    async def add(request: web.Request) -> web.Response:
        try:
            view = await need().add(await definition(request))
        except ScheduleError as exc:
            return _json({"error": "invalid schedule", "problems": exc.problems}, 400)
        except ScheduleExists as exc:
            return _json({"error": str(exc)}, 409)
        wake()
        return _json(view.to_dict(), 201)

    async def show(request: web.Request) -> web.Response:
        schedule_id = request.match_info["id"]
        try:
            fires = min(MAX_FIRES_SHOWN, max(1, int(request.query.get("fires", "5"))))
        except ValueError:
            return _json({"error": "fires: a number of fires to show, e.g. ?fires=20"}, 400)
        return shown(await need().show(schedule_id, fires), schedule_id)

    async def replace(request: web.Request) -> web.Response:
        schedule_id = request.match_info["id"]
        try:
            view = await need().replace(schedule_id, await definition(request))
        except ScheduleError as exc:
            return _json({"error": "invalid schedule", "problems": exc.problems}, 400)
        wake()
        return shown(view, schedule_id)

    async def remove(request: web.Request) -> web.Response:
        schedule_id = request.match_info["id"]
        if not await need().remove(schedule_id):
            return _missing(schedule_id)
        return _json({"removed": schedule_id})

    async def pause(request: web.Request) -> web.Response:
        return shown(await need().pause(request.match_info["id"]), request.match_info["id"])

    async def resume(request: web.Request) -> web.Response:
        view = await need().resume(request.match_info["id"])
        wake()
        return shown(view, request.match_info["id"])

    async def run_now(request: web.Request) -> web.Response:
        schedule_id = request.match_info["id"]
        try:
            job_id = await need().run_now(schedule_id)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if job_id is None:
            return _missing(schedule_id)
        wake()
        return _json({"schedule_id": schedule_id, "job_id": job_id}, 202)

    # Private: not declared public, so the guard asks for the token (or a local client).
    app.router.add_get("/schedules", list_all)
    app.router.add_post("/schedules", add)
    app.router.add_get("/schedules/{id}", show)
    app.router.add_put("/schedules/{id}", replace)
    app.router.add_delete("/schedules/{id}", remove)
    app.router.add_post("/schedules/{id}/pause", pause)
    app.router.add_post("/schedules/{id}/resume", resume)
    app.router.add_post("/schedules/{id}/run", run_now)
