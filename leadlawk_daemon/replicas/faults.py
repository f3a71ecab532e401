"""A fault switchboard for the offline replicas: named faults, switched at run time over HTTP.

Each replica declares its faults as :class:`Fault` entries (a name, what it does, and a parser
that turns the JSON setting into a validated value). ``POST /_faults`` replaces the whole set
(``{}`` clears every fault; a ``null`` or ``false`` setting switches one off); ``GET /_faults``
lists what is active and what exists. A bad body changes nothing and is answered 400 with every
problem named.

Counted faults (a setting of ``true`` or a positive count N) let a test say "the next N
requests" so that recovery can be exercised without a second call: :meth:`FaultSwitchboard.take`
consumes one unit of such a fault.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "FOREVER",
    "Fault",
    "FaultSettingError",
    "FaultSwitchboard",
    "add_fault_routes",
    "choice_or_flag",
    "counted",
    "flag",
    "fraction_or_count",
    "milliseconds",
    "positive_int",
]

FOREVER = -1
"""The stored value of a counted fault switched on with ``true``: it never runs out."""


class FaultSettingError(ValueError):
    """A fault setting that cannot be used; the message names the fault and the value."""


SettingParser = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Fault:
    """One switchable fault. ``parse`` returns the value to store, or None for "off"."""

    name: str
    setting: str
    description: str
    parse: SettingParser


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return True if value else None
    raise ValueError(f"expected true or false, got {value!r}")


def counted(value: Any) -> int | None:
    """``true``: every request; N ≥ 1: the next N requests; ``false``/0: off."""
    if isinstance(value, bool):
        return FOREVER if value else None
    if _is_int(value) and value >= 0:
        return int(value) or None
    raise ValueError(f"expected true, false or a count ≥ 0, got {value!r}")


def milliseconds(value: Any) -> int | None:
    if _is_int(value) and 0 <= value <= 600_000:
        return int(value) or None
    raise ValueError(f"expected a whole number of milliseconds from 0 to 600000, got {value!r}")


def positive_int(value: Any) -> int | None:
    if _is_int(value) and value >= 0:
        return int(value)
    raise ValueError(f"expected a whole number ≥ 0, got {value!r}")


def fraction_or_count(value: Any) -> float | int | None:
    """A float in (0, 1) is a fraction of the items; an integer ≥ 1 is a count of items."""
    if _is_int(value) and value >= 0:
        return int(value) or None
    if isinstance(value, float) and math.isfinite(value) and 0.0 <= value < 1.0:
        return value or None
    raise ValueError(f"expected a fraction in [0, 1) or a whole count ≥ 0, got {value!r}")


def choice_or_flag(*choices: str) -> SettingParser:
    def parse(value: Any) -> bool | str | None:
        if isinstance(value, bool):
            return True if value else None
        if isinstance(value, str) and value in choices:
            return value
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"expected true, false or one of {allowed}, got {value!r}")

    return parse


class FaultSwitchboard:
    """The active faults of one replica instance (not shared between app instances)."""

    def __init__(self, faults: Iterable[Fault]) -> None:
        self._faults: dict[str, Fault] = {}
        for fault in faults:
            if fault.name in self._faults:
                raise ValueError(f"fault {fault.name!r} declared twice")
            self._faults[fault.name] = fault
        self._active: dict[str, Any] = {}

    @property
    def faults(self) -> Mapping[str, Fault]:
        return self._faults

    def replace(self, body: Any) -> None:
        """Validate every setting in ``body``, then make it the whole active set (atomically)."""
        if not isinstance(body, dict):
            raise FaultSettingError(f"the body must be a JSON object of fault settings, got {body!r}")
        problems: list[str] = []
        active: dict[str, Any] = {}
        for name, setting in body.items():
            fault = self._faults.get(name)
            if fault is None:
                known = ", ".join(sorted(self._faults))
                problems.append(f"unknown fault {name!r} (known: {known})")
                continue
            if setting is None:
                continue
            try:
                value = fault.parse(setting)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if value is not None:
                active[name] = value
        if problems:
            raise FaultSettingError("; ".join(problems))
        self._active = active

    def clear(self) -> None:
        self._active = {}

    def get(self, name: str) -> Any:
        """The active setting of ``name``, or None when it is off."""
        if name not in self._faults:
            raise KeyError(f"no fault named {name!r}")
        return self._active.get(name)

    def take(self, name: str) -> bool:
        """Whether the counted fault ``name`` applies to this request; consumes one unit."""
        remaining = self.get(name)
        if remaining is None:
            return False
        if remaining != FOREVER:
            if remaining <= 1:
                del self._active[name]
            else:
                self._active[name] = remaining - 1
        return True

    def active(self) -> dict[str, Any]:
        # Only counted faults can hold FOREVER (every other parser rejects negative numbers).
        return {name: (True if value == FOREVER else value) for name, value in self._active.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "active": self.active(),
            "available": {
                name: {"setting": fault.setting, "description": fault.description}
                for name, fault in self._faults.items()
            },
        }


def add_fault_routes(app: web.Application, board: FaultSwitchboard) -> None:
    """``GET /_faults`` and ``POST /_faults`` on ``app``, bound to ``board``."""

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(board.describe())

    async def post_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"the body is not valid JSON: {exc}"}, status=400)
        try:
            board.replace(body)
        except FaultSettingError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(board.describe())

    app.router.add_get("/_faults", get_faults)
    app.router.add_post("/_faults", post_faults)
