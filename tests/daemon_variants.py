"""Daemons with one extra, misbehaving child, for process-level shutdown tests.

Run as ``python -m tests.daemon_variants stubborn|crasher|slow``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from leadlawk_daemon.daemon import Daemon, run_daemon
from leadlawk_daemon.logs import configure_logging
from leadlawk_daemon.settings import load_settings
from supervisors.spec import Child, ChildSpec, Started


class Stubborn:
    """Ignores cancellation: the supervisor must abandon it, not wait for it."""

    async def run(self, started: Started) -> None:
        started()
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue


class Crasher:
    """Crashes as soon as it has started."""

    async def run(self, started: Started) -> None:
        started()
        await asyncio.sleep(0.01)
        raise RuntimeError("crasher crashed")


class SlowToStop:
    """Takes far longer than any budget to stop gracefully (finishing work in hand)."""

    async def run(self, started: Started) -> None:
        started()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.sleep(3600))


VARIANTS: dict[str, Callable[[], Child]] = {"stubborn": Stubborn, "crasher": Crasher, "slow": SlowToStop}


class VariantDaemon(Daemon):
    def __init__(self, variant: str) -> None:
        settings = load_settings()
        super().__init__(settings)
        self.variant = variant

    def extra_children(self) -> list[ChildSpec]:
        return [ChildSpec(self.variant, VARIANTS[self.variant], shutdown_timeout=60)]


def main() -> int:
    variant = sys.argv[1]
    settings = load_settings()
    configure_logging(settings.logging.level)
    return run_daemon(lambda: VariantDaemon(variant), settings.shutdown.budget)


if __name__ == "__main__":
    raise SystemExit(main())
