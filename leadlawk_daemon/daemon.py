"""The daemon: the supervision tree, the one owner of signals, and the staged shutdown.

The tree, ``rest_for_one`` at the root so that a child restarts everything that depends on it:

    root (rest_for_one)
    ├── observability (one_for_one): health, http, fleet -- up first, down last
    ├── database                                       -- waits for the database
    ├── pipeline (one_for_one): dead letters, writer, enricher, scraper, coordinator
    └── intake: Redis stream and pub/sub               -- down first: stop taking jobs

Shutdown on SIGTERM/SIGINT: readiness turns false at once, then the root stops its children in
reverse start order within the shutdown budget (intake, the jobs handed back, scraping and
enrichment stopped, the writer flushed, then HTTP and health). A second signal forces exit; a
thread watchdog forces it too if the event loop itself is stuck past the budget.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from types import FrameType

import redis.asyncio as aioredis

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.database import DatabaseService
from leadlawk_daemon.fleet.metrics import FleetCollector
from leadlawk_daemon.fleet.registry import FleetRegistry, Identity
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import ChaosTargets, HttpServer, JobsApi, create_app
from leadlawk_daemon.metrics import Metrics, memory_limit_bytes
from leadlawk_daemon.settings import Settings
from supervisors.backoff import RestartBackoff
from supervisors.events import EventKind, SupervisorEvent
from supervisors.spec import ChildSpec, Restart, Strategy
from supervisors.supervisor import Supervisor, SupervisorGaveUp

__all__ = ["Daemon", "run_daemon"]

log = logging.getLogger("leadlawk.daemon")

# A child that waits for a dependency by design (the database) must not be failed for waiting.
_WAITS_FOREVER = 365 * 24 * 3600.0


class Daemon:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or MonotonicClock()
        self.metrics = metrics or Metrics()
        self.metrics.memory_limit.set(memory_limit_bytes(settings.resources.memory_limit_mb))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.health = Health(settings.resilience.health_check, settings.health, self.metrics, clock=self.clock)
        self.database = DatabaseService(settings.database, clock=self.clock, on_change=self.health.poke)
        self.health.add_probe("database", self.database.ping)
        self.redis: aioredis.Redis | None = None
        if settings.redis.url:
            self.redis = aioredis.Redis.from_url(
                settings.redis.url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=15
            )
            self.health.add_probe("redis", self._ping_redis)
        # This daemon's entry under <prefix>:fleet: (without Redis, a fleet of one).
        self.fleet = FleetRegistry(
            self.redis, settings.redis.prefix, Identity.of(self.owner, self.clock.wall()),
            ttl=settings.redis.fleet_ttl, reconnect_max_delay=settings.redis.reconnect_max_delay, clock=self.clock,
        )
        self.metrics.register(FleetCollector(self.fleet))
        self.http: HttpServer | None = None
        self.root: Supervisor | None = None
        self.jobs: JobsApi | None = None
        self.chaos_targets: ChaosTargets | None = None
        self.ready = asyncio.Event()
        self.abandoned_tasks = 0
        self._stop_requested = False

    async def _ping_redis(self) -> None:
        assert self.redis is not None
        await self.redis.ping()

    # -- the tree ---------------------------------------------------------------------------

    def _supervisor(self, name: str, children: list[ChildSpec], strategy: Strategy) -> Supervisor:
        sup = self.settings.supervision
        return Supervisor(
            name,
            children,
            strategy=strategy,
            max_restarts=sup.max_restarts,
            period=sup.period,
            backoff=RestartBackoff(sup.backoff.min, sup.backoff.max, sup.backoff.jitter, sup.backoff.reset_after),
            clock=self.clock,
            listener=self._on_supervisor_event,
        )

    def _child(
        self, child_id: str, factory: Callable[[], object], *, supervisor: bool = False, waits: bool = False
    ) -> ChildSpec:
        sup = self.settings.supervision
        return ChildSpec(
            child_id,
            factory,  # type: ignore[arg-type]
            Restart.PERMANENT,
            # A nested supervisor stops its own children one by one: give it the whole budget.
            shutdown_timeout=self.settings.shutdown.budget if supervisor else sup.shutdown_timeout,
            start_timeout=_WAITS_FOREVER if (supervisor or waits) else sup.start_timeout,
        )

    def _make_http(self) -> HttpServer:
        app = create_app(
            self.settings, self.health, self.metrics, jobs=self.jobs, chaos=self.chaos_targets, fleet=self.fleet
        )
        self.http = HttpServer.from_settings(app, self.settings)
        return self.http

    def build_tree(self) -> Supervisor:
        observability = lambda: self._supervisor(  # noqa: E731
            "observability",
            # The fleet entry is stopped (deleted) before HTTP, after everything else: it shows the
            # jobs this daemon holds until they are handed back.
            [
                self._child("health", lambda: self.health),
                self._child("http", self._make_http),
                self._child("fleet", lambda: self.fleet),
            ],
            Strategy.ONE_FOR_ONE,
        )
        children = [
            self._child("observability", observability, supervisor=True),
            self._child("database", lambda: self.database, waits=True),
            *self.extra_children(),
        ]
        return self._supervisor("root", children, Strategy.REST_FOR_ONE)

    def extra_children(self) -> list[ChildSpec]:
        """The pipeline and the intake, once they are wired in (see :mod:`leadlawk_daemon.assembly`)."""
        return []

    def _on_supervisor_event(self, event: SupervisorEvent) -> None:
        if event.kind is EventKind.STARTED and event.restarts:
            log.warning("child restarted", extra={"supervisor": event.supervisor, "child": event.child})

    # -- running ----------------------------------------------------------------------------

    def request_shutdown(self, reason: str) -> None:
        if self._stop_requested:
            return
        self._stop_requested = True
        log.info("shutdown requested", extra={"reason": reason, "budget_s": self.settings.shutdown.budget})
        self.health.stopping = True
        if self.root is not None:
            # Keep a margin of the budget for closing pools and flushing logs after the tree is down.
            margin = min(1.5, self.settings.shutdown.budget * 0.1)
            self.root.request_stop(self.clock.monotonic() + self.settings.shutdown.budget - margin)

    async def run(self) -> int:
        """Run until shutdown; the process's exit status."""
        self.root = self.build_tree()
        root_task = asyncio.create_task(self.root.run(self.ready.set), name="root")
        if self._stop_requested:
            self._stop_requested = False
            self.request_shutdown("signal before start")
        code = 0
        try:
            await root_task
        except SupervisorGaveUp as exc:
            self.health.root_failed = str(exc)
            log.error("root supervisor gave up; exiting with status 1", extra={"error": str(exc)})
            code = 1
        except Exception as exc:
            log.exception("root supervisor failed; exiting with status 1", extra={"error": repr(exc)})
            code = 1
        if self.redis is not None:
            await self.redis.aclose()
        log.info("daemon stopped", extra={"exit_status": code})
        return code

    async def run_process(self) -> int:
        """:meth:`run` as the whole process: then nothing else may keep the loop alive."""
        code = await self.run()
        await self._reap_stragglers()
        return code

    async def _reap_stragglers(self) -> None:
        """Cancel whatever is left; count what ignores cancellation instead of waiting for it."""
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in left:
            task.cancel("daemon exiting")
        if left:
            _, pending = await asyncio.wait(left, timeout=0.5)
            self.abandoned_tasks = len(pending)
            if pending:
                log.error(
                    "tasks ignored cancellation at exit",
                    extra={"tasks": ", ".join(sorted(t.get_name() for t in pending))},
                )


def _watchdog(budget: float) -> threading.Timer:
    def force() -> None:
        sys.stdout.write('{"level": "error", "event": "shutdown budget exceeded; forcing exit"}\n')
        sys.stdout.flush()
        os._exit(1)

    timer = threading.Timer(budget, force)
    timer.daemon = True
    return timer


def run_daemon(daemon_factory: Callable[[], Daemon], budget: float) -> int:
    """Run a daemon on uvloop in this (main) thread, owning SIGTERM and SIGINT."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop = runner.get_loop()
        daemon = daemon_factory()
        signals_seen: list[int] = []
        watchdog = _watchdog(budget + 1.0)

        # signal.signal rather than loop.add_signal_handler: it also runs when the loop is stuck in
        # a blocking call, so a second signal (and the watchdog) can still end the process.
        def on_signal(signum: int, _: FrameType | None) -> None:
            signals_seen.append(signum)
            if len(signals_seen) > 1:
                sys.stdout.write('{"level": "warning", "event": "second signal; forcing exit"}\n')
                sys.stdout.flush()
                os._exit(1)
            watchdog.start()
            loop.call_soon_threadsafe(daemon.request_shutdown, signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = runner.run(daemon.run_process())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if daemon.abandoned_tasks:
            # asyncio.Runner would wait for them forever on close: leave without it.
            sys.stdout.flush()
            os._exit(code)
        watchdog.cancel()
    return code


