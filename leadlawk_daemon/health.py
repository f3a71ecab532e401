"""Liveness and readiness: the event-loop lag monitor and the dependency probes.

Liveness asks only "is this process working?": the event loop answers in time and the root
supervisor has not given up. Readiness asks "should work be sent here?": every configured
dependency passes its probes, and the daemon is not shutting down. A dependency flips to down
only after ``failure_threshold`` failed probes in a row and back up after ``success_threshold``
good ones. A dependency that has never been up counts as down, and its first good probe brings it
up: the thresholds damp flapping, they should not keep a starting daemon unready for intervals.

``/health/ready`` is open to anyone, so each check's ``error`` is a short code (``unreachable``,
``timeout``, ``breaker_open``, ...); what went wrong in detail (an exception's text, which can name
hosts) goes to the log only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.clock import Clock, MonotonicClock
from actors.racing import first_of
from leadlawk_daemon.logs import redact
from leadlawk_daemon.loop_stall import LoopStallWatch
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import HealthCheckSettings, HealthSettings
from supervisors.spec import Started

__all__ = ["DependencyState", "Health", "Probe", "condition_code", "error_code", "limited_view_note"]

log = logging.getLogger("leadlawk.health")

Probe = Callable[[], Awaitable[None]]
"""Raises when the dependency is not usable; returns when it is."""

_CODE = re.compile(r"^[a-z][a-z_]{0,31}$")


def error_code(exc: BaseException) -> str:
    """A probe's failure as a short code, judged by the exception's kind, never by its text."""
    names = [cls.__name__.lower() for cls in type(exc).__mro__]
    if any("timeout" in n for n in names):
        return "timeout"
    if any("breakeropen" in n or "circuitbreaker" in n for n in names):
        return "breaker_open"
    if isinstance(exc, OSError) or any("unavailable" in n or "connection" in n for n in names):
        return "unreachable"
    return "error"


def limited_view_note(metrics: Metrics) -> str | None:
    """What ``/health/ready`` says while the last Google Maps page read was Google's limited view."""
    if not metrics.registry.get_sample_value("leadlawk_maps_view_limited"):
        return None
    return "limited_view: Google Maps shows its signed-out limited view (review counts hidden, fewer businesses)"


def condition_code(text: str) -> str:
    """A readiness condition's answer as a short code: itself if it is one, else what its words say."""
    if _CODE.match(text):
        return text
    lowered = text.lower()
    if "breaker" in lowered and "open" in lowered:
        return "breaker_open"
    if "not connected" in lowered or "reconnect" in lowered:
        return "disconnected"
    if "not running" in lowered or "not open" in lowered:
        return "not_running"
    return "failing"


@dataclass(slots=True)
class DependencyState:
    name: str
    ok: bool = False
    ever_ok: bool = False
    latency_ms: float | None = None
    error: str | None = "not_probed"
    failures: int = 0
    successes: int = 0
    # What went wrong, in words: for the log, never for /health/ready.
    detail: str | None = None

    def record(
        self,
        ok: bool,
        latency_ms: float,
        error: str | None,
        settings: HealthCheckSettings,
        detail: str | None = None,
    ) -> bool:
        """Count one probe (``error`` a short code); True when the dependency's state flipped."""
        self.latency_ms = round(latency_ms, 2)
        before = self.ok
        if ok:
            self.failures = 0
            self.successes += 1
            self.error = None
            self.detail = None
            if not self.ever_ok or self.successes >= settings.success_threshold:
                self.ok = self.ever_ok = True
        else:
            self.successes = 0
            self.failures += 1
            self.error = error
            self.detail = detail
            if self.failures >= settings.failure_threshold:
                self.ok = False
        return self.ok != before

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": self.latency_ms, "error": self.error}


@dataclass
class Health:
    """The daemon's health state and the supervised child that keeps it current."""

    check: HealthCheckSettings
    settings: HealthSettings
    metrics: Metrics
    clock: Clock = field(default_factory=MonotonicClock)
    probes: dict[str, Probe] = field(default_factory=dict)
    states: dict[str, DependencyState] = field(default_factory=dict)
    # Conditions other parts add (a breaker that is open, the browser gone): name -> error or None.
    conditions: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    # Conditions whose names are known only at run time (the dependency registry's breakers): each
    # answers name -> error or None. A name a probe has already is shown as "<name>_breaker".
    condition_sets: list[Callable[[], Mapping[str, str | None]]] = field(default_factory=list)
    # Degraded, not down (Google's limited view): shown in the detail, readiness unaffected.
    notes: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    # Plain data beside the checks in /health/ready's answer (the egress pool's exits, by name).
    details: dict[str, Callable[[], Any]] = field(default_factory=dict)
    root_failed: str | None = None
    stopping: bool = False
    last_lag: float = 0.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stuck: dict[str, set[asyncio.Future[None]]] = field(default_factory=dict)
    _condition_details: dict[str, str | None] = field(default_factory=dict)

    def add_probe(self, name: str, probe: Probe) -> None:
        self.probes[name] = probe
        self.states.setdefault(name, DependencyState(name))
        self._wake.set()

    def poke(self) -> None:
        """Probe now rather than at the next interval (a dependency just came or went)."""
        self._wake.set()

    # -- the answers -----------------------------------------------------------------------

    def live(self) -> tuple[bool, str | None]:
        if self.root_failed is not None:
            return False, f"root supervisor gave up: {self.root_failed}"
        if self.last_lag > self.settings.loop_lag_max:
            return False, f"event loop lagging {self.last_lag:.2f}s (limit {self.settings.loop_lag_max:g}s)"
        return True, None

    def ready(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {name: state.to_dict() for name, state in self.states.items()}
        for name, detail in self._conditions():
            if detail != self._condition_details.get(name):
                self._condition_details[name] = detail
                log.log(logging.INFO if detail is None else logging.WARNING, "readiness condition changed",
                        extra={"check": name, "detail": detail})
            code = None if detail is None else condition_code(detail)
            checks[name] = {"ok": code is None, "latency_ms": None, "error": code}
        ok = not self.stopping and all(c["ok"] for c in checks.values())
        for name, note in self.notes.items():
            if (detail := note()) is not None:
                checks[name] = {"ok": True, "latency_ms": None, "error": None, "degraded": detail}
        if self.stopping:
            checks["shutdown"] = {"ok": False, "latency_ms": None, "error": "shutting_down"}
        return ok, checks

    def detail(self) -> dict[str, Any]:
        """Each of :attr:`details` as it stands now."""
        return {name: read() for name, read in self.details.items()}

    def _conditions(self) -> list[tuple[str, str | None]]:
        answers = [(name, condition()) for name, condition in self.conditions.items()]
        for conditions in self.condition_sets:
            answers += [
                (f"{name}_breaker" if name in self.probes else name, detail) for name, detail in conditions().items()
            ]
        return answers

    # -- the supervised child ----------------------------------------------------------------

    async def run(self, started: Started) -> None:
        started()
        # The lag histogram says the loop was late; the stall watch names who held it.
        async with LoopStallWatch(self.settings.loop_stall_warning), asyncio.TaskGroup() as group:
            group.create_task(self._measure_lag(), name="health/loop-lag")
            group.create_task(self._probe_forever(), name="health/probes")

    async def _measure_lag(self) -> None:
        # Real time on purpose: lag is about the real loop, whatever clock the timers use.
        interval = self.settings.loop_lag_interval
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            lag = max(0.0, time.monotonic() - before - interval)
            self.last_lag = lag
            self.metrics.loop_lag.observe(lag)

    async def _probe_forever(self) -> None:
        while True:
            await self.probe_once()
            self._wake.clear()
            await first_of(self.clock.sleep(self.check.interval), self._wake.wait())

    async def probe_once(self) -> None:
        """Probe every dependency once, concurrently, each within the probe timeout."""
        names = list(self.probes)
        results = await asyncio.gather(*(self._probe(name) for name in names))
        for name, (ok, latency_ms, error, detail) in zip(names, results, strict=True):
            state = self.states.setdefault(name, DependencyState(name))
            if state.record(ok, latency_ms, error, self.check, detail):
                level = logging.INFO if state.ok else logging.WARNING
                log.log(level, "dependency up" if state.ok else "dependency down",
                        extra={"dependency": name, "error": state.error, "detail": state.detail})
            elif not ok:
                log.debug("probe failed", extra={"dependency": name, "error": error, "detail": detail})
            self.metrics.dependency_up.labels(name).set(1 if state.ok else 0)

    async def _probe(self, name: str) -> tuple[bool, float, str | None, str | None]:
        """One probe, cut at the timeout without waiting for it to unwind.

        ``asyncio.timeout`` would wait for the cancelled probe to finish cleaning up, and a client
        cleaning up over a blackholed link (a pool resetting its connection) can take minutes,
        freezing readiness exactly when it matters. The probe runs as a task of its own instead;
        one that overstays is cancelled and left to unwind in :attr:`_stuck` (still referenced,
        reaped when it ends), and while it has not, the dependency counts as failing.
        """
        if self._stuck.get(name):
            return False, 0.0, "timeout", "the previous probe has not finished unwinding"
        began = time.perf_counter()
        task = asyncio.ensure_future(self.probes[name]())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.check.timeout)
        except asyncio.CancelledError:
            # The health actor is stopping mid-probe: the probe goes with it, and its end is still
            # collected (an orphan failing later would be an unretrieved task exception).
            self._abandon(name, task)
            raise
        elapsed = (time.perf_counter() - began) * 1000
        if not done:
            self._abandon(name, task)
            return False, elapsed, "timeout", f"no answer within {self.check.timeout:g}s"
        exc = task.exception()
        if exc is not None:
            return False, elapsed, error_code(exc), redact(f"{type(exc).__name__}: {exc}")[:300]
        return True, elapsed, None, None

    def _abandon(self, name: str, task: asyncio.Future[None]) -> None:
        task.cancel()
        self._stuck.setdefault(name, set()).add(task)
        task.add_done_callback(functools.partial(self._reap, name))

    def _reap(self, name: str, task: asyncio.Future[None]) -> None:
        self._stuck.get(name, set()).discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it was reported as a failed probe already
