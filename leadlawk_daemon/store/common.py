"""What both backends do the same way, whatever their SQL dialect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
    """A single job is a batch without children: one code path persists both."""

    async def create_batch(
        self,
        job_id: str,
        spec: Mapping[str, Any],
        children: Sequence[tuple[str, Mapping[str, Any]]],
        parent_id: str | None = None,
    ) -> bool:
        raise NotImplementedError

    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        return await self.create_batch(job_id, spec, [], parent_id=parent_id)
