"""A cron expression in an IANA time zone: when a schedule is due.

Five fields (minute, hour, day of month, month, day of week), read by ``cronsim``
(docs/decisions.md says why it and not ``croniter``). Times are evaluated in the schedule's own
zone and handed out in UTC. Daylight saving is handled as cron (cronie) handles it, which is what
people expect of a nightly job:

* a local time skipped in spring (02:30 on the night clocks go from 02:00 to 03:00) fires once, at
  the next valid minute (03:00);
* a local time repeated in autumn (01:30 twice) fires once, at its first occurrence; an expression
  whose hour is a wildcard (``*/30 * * * *``) fires in both hours, since each is a real half hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = ["CronError", "CronRule"]

FIELDS = 5
# An expression is text a user typed; no real one is longer.
MAX_EXPRESSION = 200


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; ``problems`` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class CronRule:
    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, tz: str) -> CronRule:
        """Raises :class:`CronError` naming what is wrong: the expression, the zone, or both."""
        problems: list[str] = []
        zone: ZoneInfo | None = None
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            problems.append(f"tz: not an IANA time zone (e.g. America/Chicago): {tz!r:.80}")
        if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION:
            raise CronError([f"cron: must be text of at most {MAX_EXPRESSION} characters", *problems])
        fields = expression.split()
        normalised = " ".join(fields)
        if len(fields) != FIELDS:
            problems.append(f"cron: must have 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}")
        else:
            try:
                CronSim(normalised, datetime.now(UTC))
            except CronSimError as exc:
                problems.append(f"cron: {exc} in {normalised!r}")
        if problems or zone is None:
            raise CronError(problems)
        return cls(normalised, zone)

    @property
    def tz(self) -> str:
        return self.zone.key

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Every due time strictly after ``after`` (any aware datetime), in UTC, in order."""
        for local in CronSim(self.expression, after.astimezone(self.zone)):
            yield local.astimezone(UTC)

    def next_after(self, after: datetime) -> datetime:
        return next(self.times_after(after))

    def due_between(self, start: datetime, end: datetime, cap: int) -> tuple[list[datetime], bool]:
        """The due times in ``[start, end]``, oldest first: at most the last ``cap`` of them, and
        whether earlier ones were left out. Walked backwards from ``end``, so a schedule that was
        down for months costs ``cap`` steps, not one per minute it missed."""
        found: list[datetime] = []
        # Reverse iteration yields times strictly before its start: one second past ``end`` includes it.
        newest_first = CronSim(
            self.expression, (end + _SECOND).replace(microsecond=0).astimezone(self.zone), reverse=True
        )
        for local in newest_first:
            when = local.astimezone(UTC)
            if when < start:
                return found[::-1], False
            if len(found) == cap:
                return found[::-1], True
            found.append(when)
        return found[::-1], False


_SECOND = timedelta(seconds=1)
