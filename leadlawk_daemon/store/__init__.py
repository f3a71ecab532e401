"""Persistence: PostgreSQL (asyncpg) and the embedded SQLite default, one logical schema."""

from leadlawk_daemon.store.base import (
    DeadLetter,
    DeadLetterKind,
    Job,
    JobLead,
    JobStatus,
    MigrationError,
    Store,
    StoreError,
    StoreUnavailable,
)
from leadlawk_daemon.store.export import export_columns
from leadlawk_daemon.store.opening import open_store, open_store_from_settings

__all__ = [
    "DeadLetter",
    "DeadLetterKind",
    "Job",
    "JobLead",
    "JobStatus",
    "MigrationError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "export_columns",
    "open_store",
    "open_store_from_settings",
]
