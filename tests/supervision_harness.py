"""Children a test controls completely, and a reference model of OTP supervision to compare with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from supervisors.spec import ChildSpec, Restart, Started, Strategy


class Crash(Exception):
    """The failure a controlled child is told to have."""


@dataclass
class Journal:
    """Starts and stops of every child, in the order they happened."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    live: dict[str, ControlledChild] = field(default_factory=dict)


class ControlledChild:
    def __init__(self, child_id: str, journal: Journal, fail_start: Callable[[], bool] | None = None) -> None:
        self.child_id = child_id
        self.journal = journal
        self.fail_start = fail_start
        self.exit: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self, started: Started) -> None:
        if self.fail_start is not None and self.fail_start():
            raise Crash(f"{self.child_id} cannot start")
        self.journal.entries.append(("start", self.child_id))
        self.journal.live[self.child_id] = self
        started()
        try:
            await self.exit
        except asyncio.CancelledError:
            self.journal.entries.append(("stop", self.child_id))
            raise
        finally:
            if self.journal.live.get(self.child_id) is self:
                del self.journal.live[self.child_id]

    def finish(self, crash: bool) -> None:
        if crash:
            self.exit.set_exception(Crash(self.child_id))
        else:
            self.exit.set_result(None)


def controlled_specs(
    restarts: list[Restart], journal: Journal, shutdown_timeout: float = 5.0
) -> list[ChildSpec]:
    return [
        ChildSpec(
            id=f"c{i}",
            factory=lambda cid=f"c{i}": ControlledChild(cid, journal),  # type: ignore[misc]
            restart=restart,
            shutdown_timeout=shutdown_timeout,
        )
        for i, restart in enumerate(restarts)
    ]


class SupervisionModel:
    """OTP's supervisor rules, as plain bookkeeping, with no asyncio at all."""

    def __init__(self, restarts: list[Restart], strategy: Strategy, max_restarts: int, period: float) -> None:
        self.children: list[tuple[str, Restart]] = [(f"c{i}", r) for i, r in enumerate(restarts)]
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period = period
        self.running: list[str] = [cid for cid, _ in self.children]
        self.journal: list[tuple[str, str]] = [("start", cid) for cid, _ in self.children]
        self.restart_times: list[float] = []
        self.gave_up = False

    def _stop(self, ids: list[str]) -> None:
        for cid in reversed(ids):
            if cid in self.running:
                self.running.remove(cid)
                self.journal.append(("stop", cid))

    def exit(self, child_id: str, crash: bool, now: float) -> None:
        self.running.remove(child_id)
        kind = dict(self.children)[child_id]
        if not (kind is Restart.PERMANENT or (kind is Restart.TRANSIENT and crash)):
            if kind is Restart.TEMPORARY:
                self.children = [c for c in self.children if c[0] != child_id]
            return
        self.restart_times = [t for t in [*self.restart_times, now] if now - t < self.period]
        if len(self.restart_times) > self.max_restarts:
            self.gave_up = True
            self._stop([cid for cid, _ in self.children])
            return
        ids = [cid for cid, _ in self.children]
        index = ids.index(child_id)
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected: list[str] = []
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = [cid for cid in ids if cid != child_id]
        else:
            affected = ids[index + 1 :]
        self._stop(affected)
        kinds = dict(self.children)
        self.children = [c for c in self.children if not (c[0] in affected and c[1] is Restart.TEMPORARY)]
        group = [cid for cid, _ in self.children if cid == child_id or cid in affected]
        for cid in group:
            assert kinds[cid] is not Restart.TEMPORARY or cid == child_id
            self.running.append(cid)
            self.journal.append(("start", cid))
        order = [cid for cid, _ in self.children]
        self.running.sort(key=order.index)
