"""Wires the parts into one daemon: events, the pipeline and the Redis intake under the root.

    root (rest_for_one)
    ├── observability: health, http
    ├── database
    ├── events          (Redis pub/sub publisher; only with REDIS_URL)
    ├── pipeline        (one_for_one: dead letters, writer, enricher, scraper, coordinator)
    ├── schedules       (the firing loop: due schedules fired once across the daemons; schedules.enabled)
    └── intake          (Redis stream + pub/sub; only with REDIS_URL)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from actors.stats import ActorStats, ActorStatsCollector
from leadlawk_daemon.daemon import Daemon
from leadlawk_daemon.dead_letter_writer import DeadLetterWriter
from leadlawk_daemon.deliveries.http import DeliveriesSource, mount_deliveries
from leadlawk_daemon.deliveries.service import DeliveryService
from leadlawk_daemon.dependencies import Dependencies
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import limited_view_note
from leadlawk_daemon.http_api import ChaosTarget, HttpServer, JobRefused
from leadlawk_daemon.intake.admission import Admission, Admitted, JobStore, Source
from leadlawk_daemon.intake.events import EventPublisher, EventType
from leadlawk_daemon.intake.pubsub import PubSubIntake
from leadlawk_daemon.intake.stream import StreamIntake
from leadlawk_daemon.jobs.lifecycle import JobLifecycle
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.pipeline import Pipeline
from leadlawk_daemon.quota import SharedQuotas, shared_quotas_note
from leadlawk_daemon.schedules.book import ScheduleBook
from leadlawk_daemon.schedules.firing import FiringLimits, ScheduleFiring
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import Store
from leadlawk_daemon.store.base import JOB_STATUSES, StoreUnavailable
from leadlawk_daemon.store.sql_store import SqlStore
from supervisors.events import EventKind, SupervisorEvent
from supervisors.spec import ChildSpec, Started, Strategy
from supervisors.supervisor import Supervisor

__all__ = ["LeadLawkDaemon", "build_daemon"]

log = logging.getLogger("leadlawk.daemon")


class LogEvents:
    """The event sink without Redis: events go to the log at debug level."""

    def publish(self, type: EventType, /, **context: Any) -> None:
        log.debug(type, extra={"event_type": type, **{k: v for k, v in context.items() if k != "event"}})


class PipelineService:
    """Builds the pipeline on the live store and runs its supervisor; a child of the root."""

    def __init__(self, daemon: LeadLawkDaemon) -> None:
        self.daemon = daemon
        self.pipeline: Pipeline | None = None
        self.deliveries: DeliveryService | None = None
        self._supervisor: Supervisor | None = None

    def request_stop(self, deadline: float | None = None) -> None:
        if self._supervisor is not None:
            self._supervisor.request_stop(deadline)

    async def run(self, started: Started) -> None:
        d = self.daemon
        store = d.database.store
        if store is None:
            raise RuntimeError("pipeline started before the database was open")
        d.dead_letters.store = store
        async with Pipeline(
            d.settings, store, d.metrics, d.clock, d.events, d.dead_letters, d.owner,
            register_metrics=False, shared=d.quotas, dependencies=d.dependencies,
        ) as pipeline:
            self.pipeline = pipeline

            def deliveries() -> DeliveryService:
                # Finished jobs' digests (docs/deliveries.md): they need the store, not the browser, so
                # they start before the actors (and are stopped after them; the sweep makes what a stop missed).
                self.deliveries = DeliveryService(d.settings, store, d.bus, d.metrics, d.clock, d.dependencies)
                return self.deliveries

            children = [
                ChildSpec("dead-letters", lambda: d.dead_letters, shutdown_timeout=2.0),
                ChildSpec("deliveries", deliveries, shutdown_timeout=3.0), *pipeline.children(),
            ]
            # one_for_one: what the actors share (mailboxes, the write buffer, job runs, breakers) lives
            # on the pipeline and their cells, not in the actors, so a crashed writer need not cost a
            # browser relaunch and every job's lease. Start and stop order stay as listed.
            self._supervisor = d.make_supervisor("pipeline", children, Strategy.ONE_FOR_ONE)
            try:
                await self._supervisor.run(started)
            finally:
                self.pipeline = None
                self.deliveries = None
                self._supervisor = None
                d.dead_letters.store = None
                d.dependencies.clear()


class IntakeService:
    """The Redis stream and pub/sub intakes under one supervisor; jobs persisted, then the pipeline woken."""

    def __init__(self, daemon: LeadLawkDaemon) -> None:
        self.daemon = daemon
        self._supervisor: Supervisor | None = None
        self.stream: StreamIntake | None = None
        self.pubsub: PubSubIntake | None = None

    def request_stop(self, deadline: float | None = None) -> None:
        if self._supervisor is not None:
            self._supervisor.request_stop(deadline)

    def readiness(self) -> str | None:
        """Jobs can arrive only while both intakes are connected (and subscribed)."""
        for name, part in (("stream", self.stream), ("pubsub", self.pubsub)):
            if part is None:
                return f"{name} intake not running"
            if not part.connected:
                return f"{name} intake not connected to Redis (reconnecting)"
        return None

    async def _on_job(self, spec: JobSpec) -> None:
        pipeline = self.daemon.pipeline_service.pipeline
        if pipeline is not None:
            pipeline.notify()

    async def run(self, started: Started) -> None:
        d = self.daemon
        assert d.redis is not None
        admission = d.admission()
        redis_settings = d.settings.redis

        def stream() -> StreamIntake:
            assert d.redis is not None
            self.stream = StreamIntake(
                d.redis, redis_settings.prefix, admission, self._on_job,
                group=redis_settings.consumer_group, max_deliveries=redis_settings.max_deliveries,
                claim_idle=redis_settings.claim_idle, reconnect_max_delay=redis_settings.reconnect_max_delay,
                block=redis_settings.stream_block, batch=redis_settings.stream_batch, clock=d.clock,
            )
            return self.stream

        def pubsub() -> PubSubIntake:
            assert d.redis is not None
            # Pub/sub hands each message to the stream (claimed and copied in one atomic step); the
            # stream intake admits it.
            self.pubsub = PubSubIntake(
                d.redis, redis_settings.prefix,
                dedupe_window=redis_settings.pubsub_dedupe_window,
                reconnect_max_delay=redis_settings.reconnect_max_delay, clock=d.clock,
            )
            return self.pubsub

        self._supervisor = d.make_supervisor(
            "intake",
            [ChildSpec("stream", stream, shutdown_timeout=3.0), ChildSpec("pubsub", pubsub, shutdown_timeout=3.0)],
            Strategy.ONE_FOR_ONE,
        )
        try:
            await self._supervisor.run(started)
        finally:
            self._supervisor = None


class DaemonJobs:
    """``/jobs`` over the live pipeline and store."""

    def __init__(self, daemon: LeadLawkDaemon) -> None:
        self.daemon = daemon

    def _store(self) -> Store:
        store = self.daemon.database.store
        if store is None:
            raise JobRefused(503, "the database is not available yet")
        return store

    async def submit(self, spec: JobSpec) -> bool:
        """``POST /jobs``: the daemon's one admission (QueueFull answers 429, the database down 503)."""
        pipeline = self.daemon.pipeline_service.pipeline
        if pipeline is None:
            raise JobRefused(503, "the pipeline is not running yet (is the database up?)")
        admitted = await self.daemon.admit(spec, "http")
        return admitted.outcome == "accepted"

    async def get(self, job_id: str) -> Mapping[str, Any] | None:
        job = await self._store().get_job(job_id)
        return None if job is None else job.to_dict()

    async def list(self, status: str | None) -> list[Mapping[str, Any]]:
        if status is not None and status not in JOB_STATUSES:
            raise JobRefused(400, f"status must be one of {', '.join(JOB_STATUSES)} (got {status!r})")
        jobs = await self._store().list_jobs(status=status, limit=500)
        return [job.to_dict() for job in jobs]

    async def cancel(self, job_id: str) -> bool:
        pipeline = self.daemon.pipeline_service.pipeline
        if pipeline is not None:
            return await pipeline.cancel(job_id)
        daemon = self.daemon
        return await JobLifecycle(self._store(), daemon.events, daemon.metrics, clock=daemon.clock).cancel(job_id)


class LeadLawkDaemon(Daemon):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.publisher: EventPublisher | None = None
        if self.redis is not None:
            self.publisher = EventPublisher(
                self.redis, settings.redis.prefix, capacity=settings.redis.events_buffer,
                reconnect_max_delay=settings.redis.reconnect_max_delay, clock=self.clock,
            )
        # Every event goes to Redis (or the log) and to this process's own subscribers (the console).
        self.bus = EventBus(self.publisher or LogEvents(), clock=self.clock)
        self.events = self.bus
        # Every breaker, whoever builds it: readiness, the console, the fleet entry and the metrics read it.
        self.dependencies = Dependencies(self.metrics, self.events)
        self.dead_letters = DeadLetterWriter(self.metrics, clock=self.clock)
        self.pipeline_service = PipelineService(self)
        self.intake = IntakeService(self) if self.redis is not None else None
        self.jobs = DaemonJobs(self)
        self.schedule_firing: ScheduleFiring | None = None
        self._admission: Admission | None = None
        self._admission_store: Store | None = None
        self.chaos_targets = self._chaos_targets
        self.metrics.register(ActorStatsCollector(self.actor_stats))
        self.health.conditions["browser"] = self._browser_condition
        self.health.condition_sets.append(self.dependencies.conditions)
        if self.intake is not None:
            self.health.conditions["intake"] = self.intake.readiness
        self.health.notes["google_maps_view"] = lambda: limited_view_note(self.metrics)
        self.health.notes["egress"] = self._egress_note
        self.health.details["egress"] = self._egress_report
        self.fleet.egress = self._egress_report
        self.health.notes["destinations"] = self._destinations_note
        self.fleet.jobs_held = self._jobs_held
        self.fleet.breakers = self.dependencies.states
        # PageSpeed's quotas and the Maps politeness budget, shared with the daemons on this Redis;
        # while it is unreachable, each uses its share of the daemons the registry last saw alive.
        self.quotas = SharedQuotas.from_settings(settings, clock=self.clock, peers=self.fleet.last_seen_alive)
        if self.quotas is not None:
            quotas = self.quotas
            self.fleet.quota = quotas.report
            self.health.notes["shared_quotas"] = lambda: shared_quotas_note(quotas)

    async def run(self) -> int:
        try:
            return await super().run()
        finally:
            if self.quotas is not None:
                await self.quotas.aclose()

    def admission(self) -> Admission:
        """The one admission every intake path goes through (HTTP, stream, pub/sub via the stream,
        collect), on the store that is open now."""
        store = self.database.store
        if store is None:
            raise JobRefused(503, "the database is not available yet")
        if self._admission is None or self._admission_store is not store:
            self._admission = Admission.from_settings(self.settings, store, self.events, self.metrics)
            self._admission_store = store
        return self._admission

    async def admit(self, spec: JobSpec, source: Source) -> Admitted:
        """Admit a validated spec and wake the pipeline to look for it."""
        admitted = await self.admission().admit_spec(spec, source)
        pipeline = self.pipeline_service.pipeline
        if pipeline is not None:
            pipeline.notify()
        return admitted

    # -- schedules (docs/schedules.md) -----------------------------------------------------------

    def schedule_store(self) -> SqlStore | None:
        store = self.database.store
        return store if isinstance(store, SqlStore) else None

    def fire_admission(self, jobs: JobStore) -> Admission:
        """The admission a schedule's fire goes through: the daemon's, over the fire's own job store
        (the fire and its job in one transaction) and with no queue bound: a schedule is the
        operator's standing order, and a due time refused for a full queue would be a missed one."""
        settings, store = self.settings, self.database.store
        if store is None:
            raise StoreUnavailable("the database is not open")
        return Admission(
            jobs, store, self.events, max_bytes=settings.server.max_body_bytes, queue_size=None,
            metrics=self.metrics, max_area_km2=settings.maps.max_area_km2,
            destinations=frozenset(settings.destinations),
        )

    def schedule_book(self) -> ScheduleBook | None:
        store = self.schedule_store()
        if store is None:
            return None
        settings = self.settings
        return ScheduleBook(
            store, self.fire_admission, max_bytes=settings.server.max_body_bytes,
            max_area_km2=settings.maps.max_area_km2, destinations=frozenset(settings.destinations),
        )

    def _make_schedule_firing(self) -> ScheduleFiring:
        s = self.settings.schedules
        self.schedule_firing = ScheduleFiring(
            self.schedule_store, self.fire_admission, owner=self.owner, clock=self.clock, metrics=self.metrics,
            limits=FiringLimits(s.poll_interval, s.batch, s.parallel, s.claim_ttl, s.grace),
            on_job=self._notify_pipeline,
        )
        return self.schedule_firing

    def _notify_pipeline(self) -> None:
        pipeline = self.pipeline_service.pipeline
        if pipeline is not None:
            pipeline.notify()

    def _schedules_changed(self) -> None:
        if self.schedule_firing is not None:
            self.schedule_firing.wake()
        self._notify_pipeline()

    def _make_http(self) -> HttpServer:
        from leadlawk_daemon.console import mount_console
        from leadlawk_daemon.console.sources import ConsoleSources, HealthView, health_view
        from leadlawk_daemon.schedules.http import mount_schedules

        def health() -> HealthView:
            pipeline = self.pipeline_service.pipeline
            return health_view(
                self.health, wall=self.clock.wall(), dependencies=self.dependencies,
                daily=None if pipeline is None else pipeline.pagespeed.daily, actor_stats=self.actor_stats(),
            )

        def notify() -> None:
            pipeline = self.pipeline_service.pipeline
            if pipeline is not None:
                pipeline.notify()

        assert self.jobs is not None  # set in __init__; the base class types it optional
        server = super()._make_http()
        sources = ConsoleSources(
            settings=self.settings, jobs=self.jobs, bus=self.bus, store=lambda: self.database.store,
            health=health, notify=notify,
        )
        mount_console(server.app, sources)
        mount_schedules(server.app, self.schedule_book, self._schedules_changed)
        mount_deliveries(server.app, DeliveriesSource(store=lambda: self.database.store, wake=self._wake_deliveries))
        return server

    def make_supervisor(self, name: str, children: list[ChildSpec], strategy: Strategy) -> Supervisor:
        return self._supervisor(name, children, strategy)

    def extra_children(self) -> list[ChildSpec]:
        children = []
        if self.publisher is not None:
            publisher = self.publisher
            children.append(self._child("events", lambda: publisher))
        children.append(self._child("pipeline", lambda: self.pipeline_service, supervisor=True))
        if self.settings.schedules.enabled:
            children.append(self._child("schedules", self._make_schedule_firing))
        if self.intake is not None:
            children.append(self._child("intake", lambda: self.intake, supervisor=True))
        return children

    def _on_supervisor_event(self, event: SupervisorEvent) -> None:
        super()._on_supervisor_event(event)
        if event.kind is EventKind.STARTED and event.restarts:
            self.events.publish("actor.restarted", actor=event.child, supervisor=event.supervisor,
                                restarts=event.restarts)

    def _chaos_targets(self) -> Mapping[str, ChaosTarget]:
        pipeline = self.pipeline_service.pipeline
        if pipeline is None:
            return {}
        return {cell.name: cell for cell in pipeline.cells}

    def actor_stats(self) -> list[tuple[ActorStats, int, int]]:
        """Each actor's stats, mailbox depth and capacity (``/metrics`` and the console)."""
        pipeline = self.pipeline_service.pipeline
        if pipeline is None:
            return []
        return [(c.stats, c.mailbox.depth, c.mailbox.capacity) for c in pipeline.cells]

    def _jobs_held(self) -> list[str]:
        pipeline = self.pipeline_service.pipeline
        return [] if pipeline is None else list(pipeline.runs)

    def _destinations_note(self) -> str | None:
        """Degraded, still ready: a destination down delays deliveries, never jobs."""
        service = self.pipeline_service.deliveries
        return None if service is None else service.note()

    def _wake_deliveries(self) -> None:
        service = self.pipeline_service.deliveries
        if service is not None:
            service.wake()

    def _browser_condition(self) -> str | None:
        pipeline = self.pipeline_service.pipeline
        if pipeline is None:
            return "pipeline not running"
        return None if pipeline.browser_up() else "browser not running"

    def _egress_report(self) -> list[dict[str, Any]]:
        pipeline = self.pipeline_service.pipeline
        return [] if pipeline is None else pipeline.egress.report()

    def _egress_note(self) -> str | None:
        pipeline = self.pipeline_service.pipeline
        return None if pipeline is None else pipeline.egress.note()


def build_daemon(settings: Settings) -> Daemon:
    return LeadLawkDaemon(settings)
