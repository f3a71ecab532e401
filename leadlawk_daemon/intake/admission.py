"""Admitting one submitted job: validate, bound, persist, count, announce. The one way in.

Every intake path goes through :class:`Admission`: ``POST /jobs`` and ``leadlawk collect`` with a
spec they validated themselves (:meth:`Admission.admit_spec`), the Redis stream with raw bytes
(:meth:`Admission.admit`; pub/sub messages reach it through the stream). So ``queue_size``, the
``leadlawk_jobs_total{status="queued"}`` count and the ``job.accepted`` event are the same however
a job came.

The order is the guarantee: a job is persisted before anything acts on it, and a submission is
acknowledged (by the caller) only after :meth:`Admission.admit` returned. A rejected spec is
dead-lettered with every problem named, then announced as ``job.rejected``; a store failure
propagates, and so does :class:`QueueFull`, so the caller can leave the submission where it can
be retried (a stream entry stays pending; HTTP answers 429).

A spec without an ``id`` that arrives over Redis gets one derived from its content and its
delivery (:func:`content_id`): a redelivery of the same entry after a crash between persisting and
acknowledging derives the same id, and the database's unique key makes it a duplicate, not a
second job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import orjson

from leadlawk_daemon.events import EventSink
from leadlawk_daemon.jobspec import DEFAULT_MAX_AREA_KM2, JobSpec, JobSpecError, parse_job_spec
from leadlawk_daemon.jobspec import ID_PATTERN as _ID
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings

__all__ = [
    "Admission",
    "Admitted",
    "DeadLetterStore",
    "JobStore",
    "QueueFull",
    "Source",
    "content_id",
    "payload_text",
]

log = logging.getLogger("leadlawk.intake")

Source = Literal["pubsub", "stream", "http", "cli", "schedule"]
# A dead letter keeps enough of a huge payload to recognise it, not all of it.
MAX_PAYLOAD_CHARS = 65_536


class QueueFull(Exception):
    """Too many jobs wait already (``resilience.bulkhead.queue_size``): the submission is refused."""


class JobStore(Protocol):
    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        """Persist a queued job; ``False`` when the id exists already (it is not run again)."""
        ...

    async def create_batch(
        self, job_id: str, spec: Mapping[str, Any], children: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> bool:
        """A batch parent and its children in one transaction; ``False`` (nothing written) if the
        parent's id exists already."""
        ...

    async def count_jobs(self, status: Literal["queued"]) -> int:
        """How many leaf jobs wait in the queue."""
        ...


class DeadLetterStore(Protocol):
    async def add_dead_letter(
        self,
        kind: Literal["message", "job", "lead"],
        payload: str | Mapping[str, Any],
        reason: str,
        attempts: int = 1,
    ) -> int:
        """Keep something that could not be processed; returns its id."""
        ...


@dataclass(frozen=True, slots=True)
class Admitted:
    """What became of a submission. ``spec`` is set unless it was rejected."""

    outcome: Literal["accepted", "duplicate", "rejected"]
    spec: JobSpec | None = None
    problems: tuple[str, ...] = ()
    too_large: bool = False

    @property
    def job_id(self) -> str | None:
        return self.spec.id if self.spec is not None else None


def payload_text(raw: bytes | str | Mapping[str, Any], limit: int = MAX_PAYLOAD_CHARS) -> str:
    """The submission as text for a dead letter: undecodable bytes replaced, secrets redacted, capped."""
    if isinstance(raw, bytes | bytearray | memoryview):
        size = len(raw)
        text = bytes(raw[: limit * 4]).decode("utf-8", "replace")
    elif isinstance(raw, str):
        size = len(raw)
        text = raw.encode("utf-8", "replace").decode("utf-8")
    else:
        text = repr(raw)[: limit * 4]
        size = len(text)
    if len(text) > limit:
        text = f"{text[:limit]}… [truncated; {size} in all]"
    return redact(text)


def _claimed_id(raw: bytes | str | Mapping[str, Any]) -> str | None:
    """The id a rejected spec asked for, if it had a usable one: lets its submitter hear the verdict."""
    try:
        obj = raw if isinstance(raw, Mapping) else orjson.loads(bytes(raw) if not isinstance(raw, str) else raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    value = obj.get("id") if isinstance(obj, Mapping) else None
    return value if isinstance(value, str) and _ID.match(value) else None


def content_id(spec: JobSpec, delivery: str) -> str:
    """An id for a spec submitted without one: a digest of its canonical JSON (sorted keys, defaults
    filled in) and of ``delivery``, what tells this submission from an identical one (the stream
    entry id). The same entry redelivered derives the same id; another entry, another id."""
    canonical = orjson.dumps({k: v for k, v in spec.to_dict().items() if k != "id"}, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(canonical + b"\x00" + delivery.encode("utf-8", "replace")).hexdigest()
    # 33 characters: well inside the 64 of an id, with room for a batch's ".<child>" suffixes.
    return f"c{digest[:32]}"


class Admission:
    def __init__(
        self,
        jobs: JobStore,
        dead_letters: DeadLetterStore,
        events: EventSink,
        *,
        max_bytes: int,
        queue_size: int | None = None,
        metrics: Metrics | None = None,
        max_area_km2: float = DEFAULT_MAX_AREA_KM2,
        destinations: frozenset[str] | None = None,
    ) -> None:
        self._jobs = jobs
        self._destinations = destinations
        self._dead_letters = dead_letters
        self._events = events
        self._max_bytes = max_bytes
        self._max_area_km2 = max_area_km2
        self._queue_size = queue_size
        self._metrics = metrics

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Any,
        events: EventSink,
        metrics: Metrics | None = None,
    ) -> Admission:
        """The daemon's admission: ``server.max_body_bytes``, ``resilience.bulkhead.queue_size`` and
        ``maps.max_area_km2``, the same for every intake path."""
        return cls(
            store,
            store,
            events,
            max_bytes=settings.server.max_body_bytes,
            queue_size=settings.resilience.bulkhead.queue_size,
            metrics=metrics,
            max_area_km2=settings.maps.max_area_km2,
            destinations=frozenset(settings.destinations),
        )

    async def admit(
        self,
        raw: bytes | str | Mapping[str, Any],
        source: Source,
        *,
        attempts: int = 1,
        delivery: str | None = None,
        **context: Any,
    ) -> Admitted:
        """Validate and persist ``raw``. Raises when the store fails (nothing was persisted then) and
        :class:`QueueFull` when the queue has no room.

        ``delivery`` identifies this submission (a stream entry id): a spec without an id gets one
        derived from its content and ``delivery`` (:func:`content_id`). Without it, a random one.
        ``context`` goes into the events and the log lines.
        """
        try:
            spec = parse_job_spec(
                raw, self._max_bytes, max_area_km2=self._max_area_km2, destinations=self._destinations
            )
        except JobSpecError as exc:
            claimed = None if exc.too_large else _claimed_id(raw)
            if claimed is not None and "job_id" not in context:
                context["job_id"] = claimed
            await self.reject(raw, exc.problems, source, attempts=attempts, **context)
            return Admitted("rejected", problems=tuple(exc.problems), too_large=exc.too_large)
        if delivery is not None and _claimed_id(raw) is None:
            spec = replace(spec, id=content_id(spec, delivery))
        return await self.admit_spec(spec, source, **context)

    async def admit_spec(self, spec: JobSpec, source: Source, **context: Any) -> Admitted:
        """Persist a validated spec (a batch with its children); ``duplicate`` when its id exists.

        Raises :class:`QueueFull` when ``queue_size`` jobs wait already, and the store's error when
        it fails. The bound is counted, then written: daemons admitting at the same instant may pass
        it by a few jobs, never by an unbounded number.
        """
        children = spec.children()
        await self._check_room(spec, len(children) or 1)
        if children:
            # One transaction: no daemon can lease a parent whose children are not there yet, and a
            # crash cannot leave a batch without them.
            created = await self._jobs.create_batch(spec.id, spec.to_dict(), [(c.id, c.to_dict()) for c in children])
        else:
            created = await self._jobs.create_job(spec.id, spec.to_dict(), None)
        if not created:
            log.info("duplicate job id, not run again", extra={"job_id": spec.id, "source": source, **context})
            return Admitted("duplicate", spec=spec)
        log.info("job accepted", extra={"job_id": spec.id, "source": source, **context})
        if self._metrics is not None:
            self._metrics.jobs.labels(status="queued").inc()
        self._events.publish(
            "job.accepted",
            job_id=spec.id,
            source=source,
            query=spec.query,
            queries=list(spec.queries) if spec.queries is not None else None,
            children=len(children),
            **context,
        )
        return Admitted("accepted", spec=spec)

    async def has_room(self, adding: int = 1) -> bool:
        """Whether ``adding`` more jobs fit in the queue now."""
        if self._queue_size is None:
            return True
        return await self._jobs.count_jobs("queued") + adding <= self._queue_size

    async def _check_room(self, spec: JobSpec, adding: int) -> None:
        if self._queue_size is None:
            return
        waiting = await self._jobs.count_jobs("queued")
        if waiting + adding > self._queue_size:
            if self._metrics is not None:
                self._metrics.jobs.labels(status="refused").inc()
            raise QueueFull(
                f"job {spec.id} refused: {waiting} jobs are waiting and it adds {adding}; "
                f"resilience.bulkhead.queue_size is {self._queue_size}"
            )

    async def reject(
        self,
        raw: bytes | str | Mapping[str, Any],
        problems: list[str],
        source: Source,
        *,
        attempts: int = 1,
        **context: Any,
    ) -> None:
        """Dead-letter a submission, then announce it. Raises if the dead letter cannot be stored."""
        reason = redact("; ".join(problems))
        await self._dead_letters.add_dead_letter("message", payload_text(raw), reason, attempts)
        if self._metrics is not None:
            self._metrics.dead_letters.labels(kind="message").inc()
            self._metrics.jobs.labels(status="rejected").inc()
        log.warning("job rejected", extra={"source": source, "reason": reason, **context})
        self._events.publish("job.rejected", source=source, reason=reason, problems=problems, **context)
