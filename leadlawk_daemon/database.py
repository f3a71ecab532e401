"""The database as a supervised child: opens the store, retrying while the database is down.

Children started after it (the pipeline) are built only once it is ready, so they always get
a live store; the HTTP server and the health probes, started before it, answer meanwhile and
report the database as down. A broken migration is not retried: it fails the child, and
restart intensity takes it from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.logs import redact
from leadlawk_daemon.settings import DatabaseSettings
from leadlawk_daemon.store import MigrationError, Store, open_store_from_settings
from supervisors.backoff import Backoff
from supervisors.spec import Started

__all__ = ["DatabaseService"]

log = logging.getLogger("leadlawk.database")


class DatabaseService:
    def __init__(
        self,
        settings: DatabaseSettings,
        clock: Clock | None = None,
        max_delay: float = 10.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_change = on_change or (lambda: None)
        self.clock: Clock = clock or MonotonicClock()
        self.max_delay = max_delay
        self.store: Store | None = None
        self.last_error: str | None = "not connected yet"

    async def ping(self) -> None:
        """The readiness probe."""
        store = self.store
        if store is None:
            raise ConnectionError(self.last_error or "not connected")
        await store.ping()

    async def run(self, started: Started) -> None:
        retries = Backoff(0.25, self.max_delay).sequence()
        while True:
            try:
                async with open_store_from_settings(self.settings, clock=self.clock, migrate=True) as store:
                    self.store = store
                    self.last_error = None
                    log.info("database open", extra={"backend": self.settings.url.split(":", 1)[0]})
                    self.on_change()
                    started()
                    await asyncio.Event().wait()
            except MigrationError:
                raise
            except Exception as exc:
                self.last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
                log.error(
                    "database unavailable; retrying",
                    extra={"error": self.last_error, "retry_in_s": retries.current()},
                )
            finally:
                self.store = None
                self.on_change()
            await retries.wait(self.clock)
