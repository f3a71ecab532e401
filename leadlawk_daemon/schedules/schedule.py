"""What a schedule is: its definition as a user writes it, validated, and its stored record.

A definition names every problem at once, like a job spec: ``cron: must have 5 fields …``,
``spec.limit: must be between 1 and 500 (got 900)``. Its ``spec`` is a whole job spec (area
coverage included) without an ``id``: each fire's job id is derived from the schedule's id and the
due time (:func:`job_id_for`), so the database's unique key turns a double fire into a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from leadlawk_daemon.jobspec import DEFAULT_MAX_AREA_KM2, JobSpecError, parse_job_spec
from leadlawk_daemon.schedules.cron import CronError, CronRule

__all__ = [
    "CATCH_UPS",
    "OVERLAPS",
    "CatchUp",
    "Fire",
    "FireOutcome",
    "Overlap",
    "Schedule",
    "ScheduleDefinition",
    "ScheduleError",
    "job_id_for",
    "parse_schedule",
    "slug_for",
]

CatchUp = Literal["latest", "none"]
Overlap = Literal["skip", "queue"]
FireOutcome = Literal["fired", "skipped_overlap", "missed", "queued"]
CATCH_UPS: tuple[CatchUp, ...] = get_args(CatchUp)
OVERLAPS: tuple[Overlap, ...] = get_args(Overlap)

# "s-" + id + "-" + a due time to the second (16) stays within jobspec.ID_PATTERN's 64, with room
# for a batch child's ".NNN".
MAX_ID = 40
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_FIELDS = ("id", "name", "spec", "cron", "tz", "catch_up", "overlap", "deliver", "deliver_empty", "paused")
MAX_NAME = 200
MAX_DELIVER = 16
# A placeholder id so the job spec validates now; each fire gets its own.
_PLACEHOLDER_ID = "schedule-check"


class ScheduleError(ValueError):
    """A schedule definition that cannot be used; ``problems`` names each, by field."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def slug_for(name: str) -> str:
    """A schedule id from its name: lower case, runs of anything else as one ``-``, cut to 40."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_ID].strip("-")
    return slug or "schedule"


def job_id_for(schedule_id: str, due_at: datetime, *, seconds: bool = False) -> str:
    """``s-<schedule id>-<YYYYMMDDTHHMM>Z``: one id per due time (UTC), whichever daemon fires it.
    A ``run-now`` fire is not on the minute grid, so its stamp has seconds."""
    stamp = due_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ" if seconds else "%Y%m%dT%H%MZ")
    return f"s-{schedule_id}-{stamp}"


@dataclass(frozen=True, slots=True)
class ScheduleDefinition:
    """A validated definition: what ``schedule add`` and ``POST /schedules`` store."""

    id: str
    name: str
    spec: dict[str, Any]
    rule: CronRule
    catch_up: CatchUp = "latest"
    overlap: Overlap = "skip"
    deliver: tuple[str, ...] = ()
    deliver_empty: bool = True
    paused: bool = False

    @property
    def cron(self) -> str:
        return self.rule.expression

    @property
    def tz(self) -> str:
        return self.rule.tz


@dataclass(frozen=True, slots=True)
class Fire:
    """One due time of a schedule and what became of it (a ``schedule_fires`` row)."""

    schedule_id: str
    due_at: datetime
    outcome: FireOutcome
    fired_at: datetime
    job_id: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "due_at": self.due_at.isoformat(),
            "outcome": self.outcome,
            "job_id": self.job_id,
            "fired_at": self.fired_at.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule (a ``schedules`` row)."""

    id: str
    name: str
    spec: dict[str, Any]
    cron: str
    tz: str
    catch_up: CatchUp
    overlap: Overlap
    deliver: tuple[str, ...]
    deliver_empty: bool
    paused: bool
    created_at: datetime
    updated_at: datetime
    next_due_at: datetime

    @property
    def rule(self) -> CronRule:
        return CronRule.parse(self.cron, self.tz)

    def job_spec(self, job_id: str) -> dict[str, Any]:
        """The spec of the job a fire submits: the schedule's, its id, and ``notify`` its destinations."""
        spec = {**self.spec, "id": job_id}
        if self.deliver:
            spec["notify"] = list(self.deliver)
        return spec

    def to_dict(self, fires: Sequence[Fire] = ()) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "spec": self.spec,
            "cron": self.cron,
            "tz": self.tz,
            "catch_up": self.catch_up,
            "overlap": self.overlap,
            "deliver": list(self.deliver),
            "deliver_empty": self.deliver_empty,
            "paused": self.paused,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "next_due_at": None if self.paused else self.next_due_at.isoformat(),
            "last_fires": [fire.to_dict() for fire in fires],
        }


def parse_schedule(
    obj: Any,
    *,
    max_bytes: int,
    max_area_km2: float = DEFAULT_MAX_AREA_KM2,
    destinations: Collection[str] | None = None,
) -> ScheduleDefinition:
    """Validate a definition (a JSON object); raises :class:`ScheduleError` naming every problem.
    ``destinations`` (the configured names, when known) bounds ``deliver``."""
    if not isinstance(obj, Mapping):
        raise ScheduleError(["the schedule must be a JSON object"])
    problems = [f"{key}: unknown field" for key in obj if key not in _FIELDS]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        problems.append(f"name: must be text of 1-{MAX_NAME} characters")
        name = ""
    raw_id = obj.get("id")
    schedule_id = slug_for(name) if raw_id is None and name else raw_id
    if not isinstance(schedule_id, str) or not _ID.match(schedule_id):
        problems.append(f"id: lower-case letters, digits and '-', at most {MAX_ID}, not starting or ending with '-'")
        schedule_id = ""
    rule: CronRule | None = None
    try:
        rule = CronRule.parse(obj.get("cron"), obj.get("tz", "UTC"))  # type: ignore[arg-type]
    except CronError as exc:
        problems.extend(exc.problems)
    catch_up = obj.get("catch_up", "latest")
    if catch_up not in CATCH_UPS:
        problems.append(f"catch_up: must be one of {', '.join(CATCH_UPS)} (got {catch_up!r:.40})")
    overlap = obj.get("overlap", "skip")
    if overlap not in OVERLAPS:
        problems.append(f"overlap: must be one of {', '.join(OVERLAPS)} (got {overlap!r:.40})")
    deliver = _deliver(obj.get("deliver", []), destinations, problems)
    flags = {}
    for flag, default in (("deliver_empty", True), ("paused", False)):
        value = obj.get(flag, default)
        if not isinstance(value, bool):
            problems.append(f"{flag}: must be true or false")
        flags[flag] = bool(value)
    spec = _job_spec(obj.get("spec"), max_bytes, max_area_km2, problems)
    if problems or rule is None:
        raise ScheduleError(problems)
    return ScheduleDefinition(
        id=schedule_id,
        name=name.strip(),
        spec=spec,
        rule=rule,
        catch_up=catch_up,
        overlap=overlap,
        deliver=deliver,
        deliver_empty=flags["deliver_empty"],
        paused=flags["paused"],
    )


def _deliver(value: Any, destinations: Collection[str] | None, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_DELIVER or not all(isinstance(v, str) for v in value):
        problems.append(f"deliver: must be a list of at most {MAX_DELIVER} destination names")
        return ()
    if destinations is not None:
        unknown = [name for name in value if name not in destinations]
        if unknown:
            known = ", ".join(sorted(destinations)) or "none"
            problems.append(f"deliver: not a configured destination: {', '.join(unknown)} (configured: {known})")
    return tuple(dict.fromkeys(value))


def _job_spec(value: Any, max_bytes: int, max_area_km2: float, problems: list[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        problems.append("spec: must be a job spec (a JSON object)")
        return {}
    for field in ("id", "notify"):
        if field in value:
            source = "the schedule's id and the due time" if field == "id" else "the schedule's deliver"
            problems.append(f"spec.{field}: not allowed in a schedule (it comes from {source})")
    try:
        spec = parse_job_spec({**value, "id": _PLACEHOLDER_ID}, max_bytes, max_area_km2=max_area_km2)
    except JobSpecError as exc:
        problems.extend(f"spec.{problem}" for problem in exc.problems)
        return {}
    stored = spec.to_dict()
    stored.pop("id", None)
    stored.pop("notify", None)
    return stored
