"""What every part of the store holds: its database and its clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from actors.clock import Clock
from leadlawk_daemon.store.base import utc_from_epoch
from leadlawk_daemon.store.session import Database

__all__ = ["StoreCommon", "check_job_id", "priority_of"]


def check_job_id(job_id: object) -> None:
    if not isinstance(job_id, str) or not job_id:
        raise ValueError(f"a job id must be a non-empty string, got {job_id!r:.80}")


def priority_of(spec: Mapping[str, Any]) -> int:
    """The ``jobs.priority`` column of a validated spec: its ``priority``, 5 when it has none."""
    value = spec.get("priority", 5)
    # A validated spec holds an integer 0-9; anything else (a spec stored by hand) leases as the default.
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9 else 5


class StoreCommon:
    """The state the store's parts share. Times the daemon records (a lead seen, a job created)
    are its injected clock's; lease times are the database's own (:attr:`.Dialect.now`)."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    def _now(self) -> datetime:
        return utc_from_epoch(self._clock.wall())
