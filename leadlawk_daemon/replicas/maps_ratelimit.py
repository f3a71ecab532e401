"""Per-client blocking for the Maps replica: Google's answer to one address asking too often.

Google counts what each client address asks for and, past a threshold, answers it with the
``/sorry/`` page for a while. The replica does the same per ``request.remote`` (a local proxy
sends from its own loopback address, so each exit is one client here): every navigation (a
search or a place visit) is counted in a sliding one-minute window; the navigation that would be
the ``per_minute + 1``-th in that window starts a cool-down of ``cooldown_s`` seconds, during which
each of that client's navigations is redirected to ``/sorry/`` and each feed fetch answered 429.
After the cool-down the client starts with an empty window. Cool-down navigations do not extend
it, so a client that backs off and one that keeps knocking come back at the same time, and a
test can say exactly when.

``clients`` overrides the limit for some addresses (one exit rate-limited hard while the others
are not). Navigations are counted per client whether the fault is on or not, and blocks whatever
blocked them (this fault or ``sorry``), for ``GET /_stats``. Time comes from an injected clock,
so the unit tests need no waiting.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["ClientLimiter", "ClientStats", "RateLimit", "parse_rate_limit"]

WINDOW_S = 60.0
_MAX_PER_MINUTE = 100_000
_MAX_COOLDOWN_S = 86_400.0
_MAX_CLIENTS = 4096  # addresses remembered; the least recently seen is forgotten first


@dataclass(frozen=True, slots=True)
class Limit:
    per_minute: int
    cooldown_s: float


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The ``rate_limit`` fault: a limit for every client, and overrides for some addresses."""

    default: Limit
    clients: Mapping[str, Limit] = field(default_factory=dict)

    def for_client(self, client: str) -> Limit:
        return self.clients.get(client, self.default)

    @classmethod
    def from_setting(cls, setting: Mapping[str, Any]) -> RateLimit:
        """From what :func:`parse_rate_limit` returned (valid by then)."""
        default = Limit(setting["per_minute"], setting["cooldown_s"])
        clients = {a: Limit(c["per_minute"], c["cooldown_s"]) for a, c in setting.get("clients", {}).items()}
        return cls(default, clients)


def _limit(value: Any, where: str, base: Limit | None) -> Limit:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object with per_minute and cooldown_s, got {value!r}")
    unknown = set(value) - {"per_minute", "cooldown_s"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (known: per_minute, cooldown_s)")
    per_minute = value.get("per_minute", None if base is None else base.per_minute)
    cooldown = value.get("cooldown_s", None if base is None else base.cooldown_s)
    if isinstance(per_minute, bool) or not isinstance(per_minute, int) or not 0 <= per_minute <= _MAX_PER_MINUTE:
        raise ValueError(f"{where}: per_minute must be a whole number from 0 to {_MAX_PER_MINUTE}, got {per_minute!r}")
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, int | float)
        or not math.isfinite(cooldown)
        or not 0 < cooldown <= _MAX_COOLDOWN_S
    ):
        raise ValueError(f"{where}: cooldown_s must be seconds in (0, {_MAX_COOLDOWN_S:g}], got {cooldown!r}")
    return Limit(per_minute, float(cooldown))


def parse_rate_limit(value: Any) -> dict[str, Any] | None:
    """``{"per_minute": N, "cooldown_s": S, "clients": {"127.0.0.12": {"per_minute": M}}}``;
    ``false``/``null`` is off. A client's override takes what it leaves out from the default.
    Returns the setting completed (JSON, as ``GET /_faults`` shows it)."""
    if value is False or value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with per_minute and cooldown_s, got {value!r}")
    default = _limit({k: v for k, v in value.items() if k != "clients"}, "rate_limit", None)
    raw_clients = value.get("clients", {})
    if not isinstance(raw_clients, dict) or len(raw_clients) > _MAX_CLIENTS:
        raise ValueError(f"rate_limit.clients: expected an object of at most {_MAX_CLIENTS} addresses")
    clients: dict[str, Limit] = {}
    for address, override in raw_clients.items():
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"rate_limit.clients: {address!r} is not an IP address") from None
        clients[address] = _limit(override, f"rate_limit.clients[{address!r}]", default)
    setting: dict[str, Any] = {"per_minute": default.per_minute, "cooldown_s": default.cooldown_s}
    if clients:
        setting["clients"] = {a: {"per_minute": c.per_minute, "cooldown_s": c.cooldown_s} for a, c in clients.items()}
    return setting


@dataclass(slots=True)
class ClientStats:
    navigations: int = 0
    blocks: int = 0


@dataclass(slots=True)
class _Client:
    window: deque[float] = field(default_factory=deque)
    blocked_until: float | None = None


V = TypeVar("V")


def _remembered(table: OrderedDict[str, V], client: str, new: Callable[[], V]) -> V:
    """``client``'s entry in ``table`` (made if new), which forgets the least recently seen past
    ``_MAX_CLIENTS``."""
    found = table.get(client)
    if found is None:
        found = table[client] = new()
        if len(table) > _MAX_CLIENTS:
            table.popitem(last=False)
    else:
        table.move_to_end(client)
    return found


class ClientLimiter:
    """Navigations per client address in a sliding window, and the clients cooling down."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._setting: Mapping[str, Any] | None = None
        self._limit: RateLimit | None = None
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self.stats: OrderedDict[str, ClientStats] = OrderedDict()

    def _configure(self, setting: Mapping[str, Any] | None) -> RateLimit | None:
        # A new setting is a new regime: windows and cool-downs start over. The same one posted
        # again (beside other faults) keeps them.
        if setting is not self._setting and setting != self._setting:
            self._limit = None if setting is None else RateLimit.from_setting(setting)
            self._clients.clear()
        self._setting = setting
        return self._limit

    def _stats(self, client: str) -> ClientStats:
        return _remembered(self.stats, client, ClientStats)

    def _state(self, client: str) -> _Client:
        return _remembered(self._clients, client, _Client)

    def cooling_down(self, client: str, setting: Mapping[str, Any] | None) -> bool:
        """Whether ``client`` is in its cool-down under ``setting`` (the active ``rate_limit``)."""
        self._configure(setting)
        state = self._clients.get(client)
        if state is None or state.blocked_until is None:
            return False
        if self._clock() < state.blocked_until:
            return True
        state.blocked_until = None
        state.window.clear()
        return False

    def navigate(self, client: str, setting: Mapping[str, Any] | None) -> bool:
        """Count one navigation of ``client``; False when it is to be answered with ``/sorry/``."""
        stats = self._stats(client)
        stats.navigations += 1
        if self.cooling_down(client, setting):
            stats.blocks += 1
            return False
        limit = self._limit
        if limit is None:
            return True
        now = self._clock()
        state = self._state(client)
        window = state.window
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        rule = limit.for_client(client)
        if len(window) >= rule.per_minute:
            state.blocked_until = now + rule.cooldown_s
            window.clear()
            stats.blocks += 1
            return False
        window.append(now)
        return True

    def blocked_fetch(self, client: str, setting: Mapping[str, Any] | None) -> bool:
        """Whether a feed fetch of ``client`` is refused (it is cooling down); counted as a block."""
        if not self.cooling_down(client, setting):
            return False
        self.note_block(client)
        return True

    def note_block(self, client: str) -> None:
        """A block answered to ``client`` for another reason (the ``sorry`` fault)."""
        self._stats(client).blocks += 1

    def report(self) -> dict[str, dict[str, int]]:
        return {client: {"navigations": s.navigations, "blocks": s.blocks} for client, s in self.stats.items()}

    def reset_stats(self) -> None:
        self.stats.clear()
