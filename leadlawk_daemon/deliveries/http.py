"""``/deliveries`` over HTTP, private like ``/jobs*`` (every route is, unless declared public):
``GET /deliveries[?status=…&job_id=…]``, ``GET /deliveries/{id}``, ``POST /deliveries/{id}/replay``."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from leadlawk_daemon.deliveries.ledger import DELIVERY_STATUSES, DeliveryStatus, ledger_of
from leadlawk_daemon.store.base import Store

__all__ = ["DeliveriesSource", "mount_deliveries"]


@dataclass(frozen=True, slots=True)
class DeliveriesSource:
    """What the routes read: the open store (None while the database is not), and a way to wake
    the sender after a replay."""

    store: Callable[[], Store | None]
    wake: Callable[[], None]


_SOURCE = web.AppKey("leadlawk.deliveries.source", DeliveriesSource)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _store(request: web.Request) -> Store:
    store = request.app[_SOURCE].store()
    if store is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "the database is not available yet"}', content_type="application/json",
            headers={"Retry-After": "5"},
        )  # fmt: skip
    return store


async def _list(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        return _json({"error": f"status must be one of {', '.join(DELIVERY_STATUSES)}"}, 400)
    chosen: DeliveryStatus | None = status
    found = await ledger_of(_store(request)).list(status=chosen, job_id=request.query.get("job_id"), limit=500)
    return _json({"deliveries": [d.to_dict() for d in found]})


async def _show(request: web.Request) -> web.Response:
    found = await ledger_of(_store(request)).get(request.match_info["id"])
    if found is None:
        return _json({"error": "no such delivery"}, 404)
    return _json({**found.to_dict(), "place_ids": list(found.leads)})


async def _replay(request: web.Request) -> web.Response:
    from leadlawk_daemon.control import ControlError
    from leadlawk_daemon.deliveries.command import replay_delivery

    out = io.StringIO()
    try:
        await replay_delivery(_store(request), request.match_info["id"], out)
    except ControlError:
        return _json({"error": "no such delivery"}, 404)
    request.app[_SOURCE].wake()
    return _json({"id": request.match_info["id"], "replayed": True}, 202)


def mount_deliveries(app: web.Application, source: DeliveriesSource) -> None:
    app[_SOURCE] = source
    app.router.add_get("/deliveries", _list)
    app.router.add_get("/deliveries/{id}", _show)
    app.router.add_post("/deliveries/{id}/replay", _replay)
