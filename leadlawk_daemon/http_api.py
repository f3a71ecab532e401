"""The daemon's HTTP surface (docs/interfaces.md): health probes, metrics, jobs, chaos hooks.

Routes are private unless declared public (:func:`declare_public`; today ``/health/*`` and
``/metrics``, which reveal no secret, hostname or password). A private route, and any route added
later (the console's), needs ``Authorization: Bearer $LEADLAWK_ADMIN_TOKEN`` (compared in
constant time) when a token is set; with no token it answers loopback clients only, and a request
carrying ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP`` is not one: a reverse proxy on the
same host (nginx, a tunnel, ``ssh -L``) relays strangers from 127.0.0.1. With no token the request
must also be addressed to a loopback ``Host`` or one of ``server.allowed_hosts`` (DNS rebinding).

Every state-changing request (not GET, HEAD or OPTIONS), on every route, public or private, now
or added later, is refused when it comes from another site (:mod:`.http_boundary`), and outside
the console's forms (:func:`declare_form_routes`) a body must be ``application/json`` (415): a
cross-site HTML form or ``text/plain`` POST cannot reach the API. All of this is one middleware.

A request body is read whole (up to ``server.max_body_bytes``, within ``server.body_timeout``)
however many TCP segments carry it, before the handler runs. The database being down answers 503
with ``Retry-After``; a full queue 429.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from leadlawk_daemon.fleet.registry import FleetUnavailable
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_boundary import SAFE_METHODS, HttpBoundary, is_loopback_address
from leadlawk_daemon.http_connections import ConnectionLimits, LimitedSite
from leadlawk_daemon.intake.admission import QueueFull
from leadlawk_daemon.jobspec import JobSpec, JobSpecError, parse_job_spec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import CONTENT_TYPE, Metrics
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store.base import StoreUnavailable
from supervisors.spec import Started

__all__ = [
    "BOUNDARY_KEY",
    "FLEET_KEY",
    "FORWARDING_HEADERS",
    "HOST_REFUSED",
    "ChaosTarget",
    "ChaosTargets",
    "FleetView",
    "HttpServer",
    "JobRefused",
    "JobsApi",
    "RefusalPage",
    "TokenProof",
    "add_refusal_page",
    "add_token_proof",
    "create_app",
    "declare_form_routes",
    "declare_public",
    "is_local_client",
]

log = logging.getLogger("leadlawk.http")

# Headers a proxy adds: their presence means the peer address is the proxy's, not the client's.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
# Seconds a client should wait before trying again while the database is unreachable (the database
# breaker tries again within this).
RETRY_AFTER_S = 5
HOST_REFUSED = "Host not allowed: set server.allowed_hosts or an admin token"
_PUBLIC_ROUTES = web.AppKey("leadlawk.public_routes", set[web.AbstractResource])
# Routes that take an HTML form's body (the console's) instead of JSON.
_FORM_ROUTES = web.AppKey("leadlawk.form_routes", set[web.AbstractRoute])
# The boundary's rules, for the console's cookies (Secure behind a trusted proxy) and sign-in limit.
BOUNDARY_KEY = web.AppKey("leadlawk.boundary", HttpBoundary)


class TokenProof(Protocol):
    """Another proof of the admin token than the bearer header (the console's login cookie)."""

    def proves(self, request: web.Request) -> bool:
        """True when ``request`` carries a valid proof of the token."""

    def refuse(self, request: web.Request, status: int) -> web.StreamResponse | None:
        """The answer to a refused request this proof is for (a login page for a browser); None: JSON."""


_TOKEN_PROOFS = web.AppKey("leadlawk.token_proofs", list[TokenProof])
# A refusal as a page for whoever can show one (the console's HTML), instead of the API's JSON.
RefusalPage = Callable[[web.Request, int, str], web.StreamResponse | None]
_REFUSAL_PAGES = web.AppKey("leadlawk.refusal_pages", list[RefusalPage])


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


def _refused(request: web.Request, status: int, error: str) -> web.StreamResponse:
    for proof in request.app[_TOKEN_PROOFS]:
        if (answer := proof.refuse(request, status)) is not None:
            return answer
    for page in request.app[_REFUSAL_PAGES]:
        if (answer := page(request, status, error)) is not None:
            return answer
    return _json({"error": error}, status)


async def _closing(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """``response``, sent, then the connection closed: the rest of a body we refused is not waited for
    (aiohttp would linger up to 10 s reading it)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def is_local_client(request: web.BaseRequest) -> bool:
    """A client on this host speaking to us directly: a loopback peer, and no proxy in between (not
    even a trusted one: it relays whoever reaches it)."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    return is_loopback_address(request.remote)


def _json_body_problem(request: web.BaseRequest) -> str | None:
    """Why a state-changing API request's body is not one the API takes: JSON, said so. An empty
    body carries nothing, whatever its label (``curl -X POST`` and aiohttp label it differently)."""
    if request.content_type == "application/json" or not request.body_exists:
        return None
    return "the API takes JSON bodies only: send Content-Type: application/json"


def declare_public(app: web.Application, *routes: web.AbstractRoute) -> None:
    """Open ``routes`` (every method of their paths: GET's HEAD too) to anyone. Only for routes that
    reveal no secret, hostname or password; every route not declared here is private."""
    app[_PUBLIC_ROUTES].update(route.resource for route in routes if route.resource is not None)


def declare_form_routes(app: web.Application, *routes: web.AbstractRoute) -> None:
    """``routes`` take an HTML form's body, not JSON. Every other state-changing route takes JSON only."""
    app[_FORM_ROUTES].update(routes)


def add_token_proof(app: web.Application, proof: TokenProof) -> None:
    """Accept ``proof`` on private routes besides the bearer header, when a token is set."""
    app[_TOKEN_PROOFS].append(proof)


def add_refusal_page(app: web.Application, page: RefusalPage) -> None:
    """Answer refusals with ``page`` when it returns one (None: the next page, then JSON)."""
    app[_REFUSAL_PAGES].append(page)


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
    boundary = HttpBoundary(settings.server)

    async def refusal(request: web.Request) -> web.StreamResponse | None:
        """Why this request is not served, as its answer; None when it may go on."""
        if request.match_info.route.resource not in request.app[_PUBLIC_ROUTES]:
            if request.path.startswith("/debug/") and not settings.chaos.enabled:
                raise web.HTTPNotFound()
            if token:
                supplied = request.headers.get("Authorization", "")
                expected = f"Bearer {token}"
                if not hmac.compare_digest(supplied.encode(), expected.encode()) and not any(
                    proof.proves(request) for proof in request.app[_TOKEN_PROOFS]
                ):
                    return _refused(request, 401, "missing or wrong bearer token")
            elif not is_local_client(request):
                return _refused(
                    request, 403, "no admin token is set: only local clients (loopback, not forwarded) may call this"
                )
            elif not boundary.host_allowed(request):
                log.warning("request refused: Host not allowed", extra={"path": request.path})
                return _refused(request, 403, HOST_REFUSED)
        if request.method in SAFE_METHODS:
            return None
        if (cross_site := boundary.cross_site(request)) is not None:
            log.warning("request refused: cross-site", extra={"path": request.path, "reason": cross_site})
            return _refused(request, 403, cross_site)
        form_route = request.match_info.route in request.app[_FORM_ROUTES]
        if not form_route and (problem := _json_body_problem(request)) is not None:
            return _refused(request, 415, problem)
        if request.body_exists:
            try:
                # Whole, however many segments carry it; client_max_size bounds it (a chunked body too).
                async with asyncio.timeout(settings.server.body_timeout):
                    await request.read()  # kept: the handler's read() and post() take it from here
            except TimeoutError:
                return await _closing(request, _refused(
                    request, 408, "the request body did not arrive within server.body_timeout"))
            except web.HTTPRequestEntityTooLarge:
                return await _closing(request, _refused(request, 413, f"request body larger than {max_body} bytes"))
        return None

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if (refused := await refusal(request)) is not None:
            return refused
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
        body = {"status": "ready" if ok else "not_ready", "checks": checks, **health.detail()}
        return _json(body, 200 if ok else 503)

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
        raw = await request.read()  # read whole by the guard
        try:
            spec = parse_job_spec(
                raw, max_body, max_area_km2=settings.maps.max_area_km2, destinations=frozenset(settings.destinations)
            )
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
    app[_REFUSAL_PAGES] = []
    app[_FORM_ROUTES] = set()
    app[BOUNDARY_KEY] = boundary
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
    """The aiohttp runner as a supervised child: ready once the port is bound.

    Its connections are limited (:mod:`.http_connections`): a deadline on each request head
    (``server.header_timeout``) and a cap on open connections (``server.max_connections``)."""

    def __init__(
        self, app: web.Application, host: str, port: int, shutdown_timeout: float = 3.0,
        *, limits: ConnectionLimits,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.bound_port: int | None = None
        self.limits = limits
        self._shutdown_timeout = shutdown_timeout

    @classmethod
    def from_settings(cls, app: web.Application, settings: Settings) -> HttpServer:
        server = settings.server
        return cls(app, server.host, server.port,
                   limits=ConnectionLimits(server.header_timeout, server.max_connections))

    async def run(self, started: Started) -> None:
        if self.limits.middleware not in self.app.middlewares:
            # Outermost: a request that reached the app has sent its whole head.
            self.app.middlewares.insert(0, self.limits.middleware)
        runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        try:
            site = LimitedSite(runner, self.host, self.port, self.limits)
            await site.start()
            sockets = site.sockets
            self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
            log.info("http listening", extra={"host": self.host, "port": self.bound_port})
            started()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
