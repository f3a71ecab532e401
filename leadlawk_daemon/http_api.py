"""The daemon's HTTP surface (docs/interfaces.md): health probes, metrics, jobs, chaos hooks.

Routes are private unless declared public (:func:`declare_public`; today ``/health/*`` and
``/metrics``, which reveal no secret, hostname or password). A private route, and any route added
later (the console's), needs ``Authorization: Bearer $LEADLAWK_ADMIN_TOKEN`` (compared in
constant time) when a token is set; with no token it answers loopback clients only, and a request
carrying ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP`` is not one: a reverse proxy on the
same host (nginx, a tunnel, ``ssh -L``) relays strangers from 127.0.0.1.

A request body is read whole (up to ``server.max_body_bytes``) however many TCP segments carry it.
The database being down answers 503 with ``Retry-After``; a full queue 429.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from leadlawk_daemon.fleet.registry import FleetUnavailable
from leadlawk_daemon.health import Health
from leadlawk_daemon.intake.admission import QueueFull
from leadlawk_daemon.jobspec import JobSpec, JobSpecError, parse_job_spec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import CONTENT_TYPE, Metrics
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store.base import StoreUnavailable
from supervisors.spec import Started

__all__ = [
    "FLEET_KEY",
    "FORWARDING_HEADERS",
    "ChaosTarget",
    "ChaosTargets",
    "FleetView",
    "HttpServer",
    "JobRefused",
    "JobsApi",
    "TokenProof",
    "add_token_proof",
    "create_app",
    "declare_public",
    "is_local_client",
]

log = logging.getLogger("leadlawk.http")

# Headers a proxy adds: their presence means the peer address is the proxy's, not the client's.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
# Seconds a client should wait before trying again while the database is unreachable (the database
# breaker tries again within this).
RETRY_AFTER_S = 5
_PUBLIC_ROUTES = web.AppKey("leadlawk.public_routes", set[web.AbstractResource])


class TokenProof(Protocol):
    """Another proof of the admin token than the bearer header (the console's login cookie)."""

    def proves(self, request: web.Request) -> bool:
        """True when ``request`` carries a valid proof of the token."""

    def refuse(self, request: web.Request, status: int) -> web.StreamResponse | None:
        """The answer to a refused request this proof is for (a login page for a browser); None: JSON."""


_TOKEN_PROOFS = web.AppKey("leadlawk.token_proofs", list[TokenProof])


class JobRefused(Exception):
    """The jobs API cannot do it now; ``status`` is the HTTP answer (429 queue full, 503 not ready)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JobsApi(Protocol):
    async def submit(self, spec: JobSpec) -> bool:
        """Persist ``spec``; False when its id was submitted before (it runs once)."""

    async def get(self, job_id: str) -> Mapping[str, Any] | None: ...

    async def list(self, status: str | None) -> list[Mapping[str, Any]]: ...

    async def cancel(self, job_id: str) -> bool:
        """False when there is no such job."""


class ChaosTarget(Protocol):
    def inject_crash(self) -> None: ...

    def inject_hang(self, seconds: float) -> None: ...


ChaosTargets = Callable[[], Mapping[str, ChaosTarget]]


class FleetView(Protocol):
    async def members(self) -> list[dict[str, Any]]:
        """Every live daemon sharing this Redis; raises FleetUnavailable while Redis is unreachable."""


# The fleet registry, for GET /fleet and the console: ``await request.app[FLEET_KEY].members()``.
FLEET_KEY = web.AppKey("leadlawk.fleet", FleetView)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _refused(request: web.Request, proofs: list[TokenProof], status: int, error: str) -> web.StreamResponse:
    for proof in proofs:
        if (answer := proof.refuse(request, status)) is not None:
            return answer
    return _json({"error": error}, status)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_local_client(request: web.BaseRequest) -> bool:
    """A client on this host speaking to us directly: a loopback peer, and no proxy in between."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    return _is_loopback(request.remote)


def declare_public(app: web.Application, *routes: web.AbstractRoute) -> None:
    """Open ``routes`` (every method of their paths: GET's HEAD too) to anyone. Only for routes that
    reveal no secret, hostname or password; every route not declared here is private."""
    app[_PUBLIC_ROUTES].update(route.resource for route in routes if route.resource is not None)


def add_token_proof(app: web.Application, proof: TokenProof) -> None:
    """Accept ``proof`` on private routes besides the bearer header, when a token is set."""
    app[_TOKEN_PROOFS].append(proof)


def create_app(
    settings: Settings,
    health: Health,
    metrics: Metrics,
    *,
    jobs: JobsApi | None = None,
    chaos: ChaosTargets | None = None,
    fleet: FleetView | None = None,
) -> web.Application:
    token = settings.server.admin_token
    max_body = settings.server.max_body_bytes

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.match_info.route.resource not in request.app[_PUBLIC_ROUTES]:
            if request.path.startswith("/debug/") and not settings.chaos.enabled:
                raise web.HTTPNotFound()
            proofs = request.app[_TOKEN_PROOFS]
            if token:
                supplied = request.headers.get("Authorization", "")
                expected = f"Bearer {token}"
                if not hmac.compare_digest(supplied.encode(), expected.encode()) and not any(
                    proof.proves(request) for proof in proofs
                ):
                    return _refused(request, proofs, 401, "missing or wrong bearer token")
            elif not is_local_client(request):
                return _refused(
                    request, proofs, 403,
                    "no admin token is set: only local clients (loopback, not forwarded) may call this",
                )
        try:
            return await handler(request)
        except JobRefused as exc:
            return _json({"error": str(exc)}, exc.status)
        except QueueFull as exc:
            return _json({"error": str(exc)}, 429)
        except FleetUnavailable as exc:
            response = _json({"error": str(exc)}, 503)
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        except StoreUnavailable as exc:
            log.warning("database unavailable", extra={"path": request.path, "error": redact(str(exc))})
            response = _json({"error": "the database is unavailable; try again later"}, 503)
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response

    async def live(_: web.Request) -> web.Response:
        ok, reason = health.live()
        return _json({"status": "ok"} if ok else {"status": "failing", "reason": reason}, 200 if ok else 503)

    async def ready(_: web.Request) -> web.Response:
        ok, checks = health.ready()
        return _json({"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    def need_jobs() -> JobsApi:
        if jobs is None:
            raise web.HTTPServiceUnavailable(
                text='{"error": "jobs are not available yet"}', content_type="application/json"
            )
        return jobs

    async def submit(request: web.Request) -> web.Response:
        api = need_jobs()
        if request.content_length is not None and request.content_length > max_body:
            return _json({"error": f"job spec larger than {max_body} bytes"}, 413)
        try:
            # Whole, however many segments carry it; client_max_size bounds it (a chunked body too).
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json({"error": f"job spec larger than {max_body} bytes"}, 413)
        try:
            spec = parse_job_spec(raw, max_body, max_area_km2=settings.maps.max_area_km2)
        except JobSpecError as exc:
            status = 413 if getattr(exc, "too_large", False) else 400
            return _json({"error": "invalid job spec", "problems": exc.problems}, status)
        created = await api.submit(spec)
        return _json({"id": spec.id, "created": created}, 202)

    async def get_job(request: web.Request) -> web.Response:
        job = await need_jobs().get(request.match_info["id"])
        if job is None:
            return _json({"error": f"no job {request.match_info['id']!r}"}, 404)
        return _json(job)

    async def list_jobs(request: web.Request) -> web.Response:
        status = request.query.get("status")
        return _json({"jobs": await need_jobs().list(status)})

    async def cancel(request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        if not await need_jobs().cancel(job_id):
            return _json({"error": f"no job {job_id!r} to cancel"}, 404)
        return _json({"id": job_id, "status": "cancelling"}, 202)

    async def fleet_view(request: web.Request) -> web.Response:
        view = request.app.get(FLEET_KEY)
        if view is None:
            return _json({"error": "the fleet registry is not running"}, 503)
        members = await view.members()
        return _json({"count": len(members), "members": members})

    def chaos_target(request: web.Request) -> ChaosTarget:
        name = request.match_info["actor"]
        targets = chaos() if chaos is not None else {}
        if name not in targets:
            raise web.HTTPNotFound(
                text=orjson.dumps({"error": f"no actor {name!r}", "actors": sorted(targets)}).decode(),
                content_type="application/json",
            )
        return targets[name]

    async def crash(request: web.Request) -> web.Response:
        chaos_target(request).inject_crash()
        log.warning("chaos: crash requested", extra={"actor": request.match_info["actor"]})
        return _json({"actor": request.match_info["actor"], "injected": "crash"}, 202)

    async def hang(request: web.Request) -> web.Response:
        target = chaos_target(request)
        try:
            seconds = float(request.query.get("seconds", ""))
        except ValueError:
            return _json({"error": "seconds: a number of seconds is required, e.g. ?seconds=5"}, 400)
        if not 0 < seconds <= 3600:
            return _json({"error": f"seconds: must be between 0 and 3600 (got {seconds:g})"}, 400)
        target.inject_hang(seconds)
        log.warning("chaos: hang requested", extra={"actor": request.match_info["actor"], "seconds": seconds})
        return _json({"actor": request.match_info["actor"], "injected": "hang", "seconds": seconds}, 202)

    app = web.Application(middlewares=[guard], client_max_size=max_body)
    app[_PUBLIC_ROUTES] = set()
    if fleet is not None:
        app[FLEET_KEY] = fleet
    app[_TOKEN_PROOFS] = []
    # Public: open to anyone, and revealing no secret, hostname or password.
    declare_public(
        app,
        app.router.add_get("/health/live", live),
        app.router.add_get("/health/ready", ready),
        app.router.add_get("/metrics", metrics_view),
    )
    # Private (token, or a local client when no token is set): these, and every route added later.
    app.router.add_post("/jobs", submit)
    app.router.add_get("/jobs", list_jobs)
    app.router.add_get("/jobs/{id}", get_job)
    app.router.add_post("/jobs/{id}/cancel", cancel)
    app.router.add_get("/fleet", fleet_view)
    app.router.add_post("/debug/crash/{actor}", crash)
    app.router.add_post("/debug/hang/{actor}", hang)
    return app


class HttpServer:
    """The aiohttp runner as a supervised child: ready once the port is bound."""

    def __init__(self, app: web.Application, host: str, port: int, shutdown_timeout: float = 3.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.bound_port: int | None = None
        self._shutdown_timeout = shutdown_timeout

    async def run(self, started: Started) -> None:
        runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
            log.info("http listening", extra={"host": self.host, "port": self.bound_port})
            started()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
