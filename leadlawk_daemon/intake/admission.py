"""Admitting one submitted job spec: validate, persist, announce. Shared by every intake path.

The order is the guarantee: a job is persisted before anything acts on it, and a submission is
acknowledged (by the caller) only after :meth:`Admission.admit` returned. A rejected spec is
dead-lettered with every problem named, then announced as ``job.rejected``; a store failure
propagates, so the caller can leave the submission where it can be retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from leadlawk_daemon.intake.events import EventSink
from leadlawk_daemon.jobspec import ID_PATTERN as _ID
from leadlawk_daemon.jobspec import JobSpec, JobSpecError, parse_job_spec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import Metrics

__all__ = ["Admission", "Admitted", "DeadLetterStore", "JobStore", "payload_text"]

log = logging.getLogger("leadlawk.intake")

Source = Literal["pubsub", "stream", "http", "cli"]
# A dead letter keeps enough of a huge payload to recognise it, not all of it.
MAX_PAYLOAD_CHARS = 65_536


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


class Admission:
    def __init__(
        self,
        jobs: JobStore,
        dead_letters: DeadLetterStore,
        events: EventSink,
        *,
        max_bytes: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._jobs = jobs
        self._dead_letters = dead_letters
        self._events = events
        self._max_bytes = max_bytes
        self._metrics = metrics

    async def admit(
        self, raw: bytes | str | Mapping[str, Any], source: Source, *, attempts: int = 1, **context: Any
    ) -> Admitted:
        """Validate and persist ``raw``. Raises only when the store fails (nothing was persisted then).

        ``context`` (a stream entry id, say) goes into the events and the log lines.
        """
        try:
            spec = parse_job_spec(raw, self._max_bytes)
        except JobSpecError as exc:
            claimed = None if exc.too_large else _claimed_id(raw)
            if claimed is not None and "job_id" not in context:
                context["job_id"] = claimed
            await self.reject(raw, exc.problems, source, attempts=attempts, **context)
            return Admitted("rejected", problems=tuple(exc.problems), too_large=exc.too_large)
        children = spec.children()
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
