"""Dead letters: what the daemon could not process, kept with why, for ``leadlawk dlq``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leadlawk_daemon.store.base import DeadLetter, DeadLetterKind, StoreError
from leadlawk_daemon.store.batch import check_dead_letter_kind, dead_letter_text
from leadlawk_daemon.store.common import StoreCommon

__all__ = ["DeadLetters"]

_COLUMNS = "id, kind, payload, reason, attempts, created_at, replayed_at"


class DeadLetters(StoreCommon):
    async def add_dead_letter(
        self, kind: DeadLetterKind, payload: str | Mapping[str, Any], reason: str, attempts: int = 1
    ) -> int:
        check_dead_letter_kind(kind)
        async with self.database.writing() as session:
            rows = await session.fetch(
                "INSERT INTO dead_letters (kind, payload, reason, attempts, created_at) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                kind,
                dead_letter_text(payload),
                dead_letter_text(reason),
                attempts,
                self._now(),
            )
        new_id = rows[0]["id"] if rows else None
        if not isinstance(new_id, int):
            raise StoreError("the database returned no id for a new dead letter")
        return new_id

    async def list_dead_letters(
        self, kind: DeadLetterKind | None = None, include_replayed: bool = False, limit: int = 100
    ) -> list[DeadLetter]:
        async with self.database.reading() as session:
            rows = await session.fetch(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE (CAST($1 AS text) IS NULL OR kind = $1) "
                "AND ($2 OR replayed_at IS NULL) ORDER BY created_at, id LIMIT $3",
                kind,
                include_replayed,
                limit,
            )
        return [DeadLetter(**row) for row in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = $1", dead_letter_id)
        return DeadLetter(**rows[0]) if rows else None

    async def mark_replayed(self, dead_letter_id: int) -> bool:
        async with self.database.writing() as session:
            return (
                await session.execute(
                    "UPDATE dead_letters SET replayed_at = $2 WHERE id = $1 AND replayed_at IS NULL",
                    dead_letter_id,
                    self._now(),
                )
                > 0
            )

    async def bump_dead_letter(self, dead_letter_id: int, reason: str) -> bool:
        """A replayed item failed again: back to pending, attempts raised, the new reason kept."""
        async with self.database.writing() as session:
            return (
                await session.execute(
                    "UPDATE dead_letters SET attempts = attempts + 1, reason = $2, replayed_at = NULL WHERE id = $1",
                    dead_letter_id,
                    dead_letter_text(reason),
                )
                > 0
            )
