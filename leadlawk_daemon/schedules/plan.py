"""What a due schedule does now: which due times fire, which are missed, and the next due time.

Pure: given the schedule, the schedule clock's now and whether its previous fire's job is still
live, it decides; the firing loop (:mod:`.firing`) writes the decision in one transaction.

* Every cron time from the schedule's ``next_due_at`` up to now is a due time, and each gets one
  ``schedule_fires`` row. Only the latest can fire: the earlier ones were missed (the daemons, or
  the database, were down when they came), and are recorded ``missed`` (the last
  :data:`MAX_MISSED` of them; the rest are counted in the log).
* The latest fires if it is on time (at most ``grace`` late), or late when ``catch_up`` is
  ``latest``; late with ``catch_up: none``, it is ``missed`` too.
* A fire while the previous fire's job is still queued or running follows ``overlap``: ``skip``
  records ``skipped_overlap``; ``queue`` records ``queued``, and its job is created when the
  previous one has finished. One fire waits at most: a further one is ``skipped_overlap``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadlawk_daemon.schedules.cron import CronRule
from leadlawk_daemon.schedules.schedule import CatchUp, FireOutcome, Overlap, job_id_for

__all__ = ["MAX_MISSED", "Busy", "FirePlan", "PlannedFire", "plan_fires"]

# Missed due times recorded one by one after an outage; a schedule every minute down for a week
# records its last 100, not 10,000 rows.
MAX_MISSED = 100


class Busy(enum.Enum):
    """Where the schedule's previous fire stands."""

    IDLE = "idle"  # no fire yet, or its job has finished
    RUNNING = "running"  # its job is queued or running
    WAITING = "waiting"  # a queued fire waits for its job to be created


@dataclass(frozen=True, slots=True)
class PlannedFire:
    due_at: datetime
    outcome: FireOutcome
    job_id: str | None = None

    @property
    def creates_job(self) -> bool:
        return self.outcome == "fired"


@dataclass(frozen=True, slots=True)
class FirePlan:
    fires: tuple[PlannedFire, ...]
    next_due_at: datetime
    missed_uncounted: bool = False
    """Due times older than the last :data:`MAX_MISSED` passed unrecorded."""

    @property
    def job_fire(self) -> PlannedFire | None:
        return next((f for f in self.fires if f.creates_job), None)


def plan_fires(
    schedule_id: str,
    rule: CronRule,
    next_due_at: datetime,
    now: datetime,
    *,
    catch_up: CatchUp,
    overlap: Overlap,
    grace: timedelta,
    busy: Busy,
) -> FirePlan:
    due, dropped = rule.due_between(next_due_at, now, MAX_MISSED + 1)
    following = rule.next_after(max(now, next_due_at))
    if not due:
        # next_due_at was not a cron time (the expression changed under it): nothing is owed.
        return FirePlan((), following)
    *earlier, latest = due
    fires = [PlannedFire(when, "missed") for when in earlier]
    if catch_up == "none" and now - latest > grace:
        fires.append(PlannedFire(latest, "missed"))
    else:
        fires.append(_latest(schedule_id, latest, overlap, busy))
    return FirePlan(tuple(fires), following, dropped)


def _latest(schedule_id: str, due_at: datetime, overlap: Overlap, busy: Busy) -> PlannedFire:
    job_id = job_id_for(schedule_id, due_at)
    if busy is Busy.IDLE:
        return PlannedFire(due_at, "fired", job_id)
    if overlap == "queue" and busy is Busy.RUNNING:
        return PlannedFire(due_at, "queued", job_id)
    return PlannedFire(due_at, "skipped_overlap")
