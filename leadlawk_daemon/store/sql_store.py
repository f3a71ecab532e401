"""The one :class:`~leadlawk_daemon.store.base.Store`: its parts, over whichever database it is given.

Each part holds one concept and the SQL it owns (:mod:`.leads`, :mod:`.lifecycle`, :mod:`.job_reads`,
:mod:`.dead_letters`, :mod:`.schedules`); a backend (:mod:`.postgres`, :mod:`.sqlite`) supplies only a
:class:`~.session.Database`: sessions, transactions, value types and bulk loading.
"""

from __future__ import annotations

from leadlawk_daemon.store.companies import CompanyGroups
from leadlawk_daemon.store.dead_letters import DeadLetters
from leadlawk_daemon.store.job_reads import JobReads
from leadlawk_daemon.store.leads import LeadFacts
from leadlawk_daemon.store.lifecycle import JobLifecycle
from leadlawk_daemon.store.migrations import check_applied, load_migrations
from leadlawk_daemon.store.schedules import ScheduleQueries

__all__ = ["SqlStore"]


class SqlStore(LeadFacts, JobLifecycle, JobReads, DeadLetters, CompanyGroups, ScheduleQueries):
    async def migrate(self) -> list[int]:
        """Apply pending migrations (serialised across processes); returns the versions applied now."""
        d = self.database.dialect
        migrations = load_migrations(d.name)
        applied_now: list[int] = []
        async with self.database.migrating() as session:
            await session.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                f"name text NOT NULL, checksum text NOT NULL, applied_at {d.timestamp_type} NOT NULL)"
            )
            rows = await session.fetch("SELECT version, checksum FROM schema_migrations")
            for migration in check_applied({r["version"]: r["checksum"] for r in rows}, migrations):
                async with session.atomic():
                    await session.script(migration.sql)
                    await session.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2, $3, $4)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                        self._now(),
                    )
                applied_now.append(migration.version)
        return applied_now

    async def ping(self) -> None:
        """One round trip; raises :class:`~.base.StoreUnavailable` when the database does not answer."""
        async with self.database.reading() as session:
            await session.fetch("SELECT 1 AS ok")
