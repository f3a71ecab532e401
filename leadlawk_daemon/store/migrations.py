"""The versioned schema: ``migrations/NNN_name.<dialect>.sql`` files shipped inside the package.

Each backend applies the files of its dialect in version order, each in its own transaction, and
records them in ``schema_migrations`` with a checksum so an edited, already-applied file is caught.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from leadlawk_daemon.store.base import MigrationError

__all__ = ["Migration", "check_applied", "load_migrations", "split_statements"]

Dialect = Literal["postgres", "sqlite"]
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.(postgres|sqlite)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(dialect: Dialect) -> list[Migration]:
    folder = resources.files("leadlawk_daemon.store") / "migrations"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None or match.group(3) != dialect:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two {dialect} migrations share version {version}: {entry.name}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    if not found:
        raise MigrationError(f"no {dialect} migrations found in {folder}")
    return [found[v] for v in sorted(found)]


def check_applied(applied: dict[int, str], migrations: list[Migration]) -> list[Migration]:
    """The migrations still to apply; raises if an applied one was edited or is unknown here."""
    known = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        mine = known.get(version)
        if mine is None:
            raise MigrationError(
                f"the database has migration {version}, which this version of LeadLawk does not know "
                "(a newer release migrated it)"
            )
        if mine.checksum != checksum:
            raise MigrationError(f"migration {version} ({mine.name}) was edited after it was applied")
    return [m for m in migrations if m.version not in applied]


def split_statements(sql: str) -> list[str]:
    """SQLite statements one by one, so a migration runs inside our transaction.

    (``executescript`` would commit first.) ``complete_statement`` knows about strings and triggers.
    """
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if statement.rstrip(";").strip() and not _only_comments(statement):
                statements.append(statement)
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise MigrationError(f"unterminated SQL statement: {pending.strip()[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
