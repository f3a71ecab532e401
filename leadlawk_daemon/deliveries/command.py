"""``leadlawk deliveries list|show ID|replay ID``, on the store (no daemon needed), and the ``delivery``
dead letter's replay for ``leadlawk dlq replay``.

A replay puts the delivery back to ``pending``, due now: the daemon's sender sends it at its next
look (at once when replayed over HTTP, within ``deliveries.sweep_interval`` otherwise), with the same
delivery id, so a receiver that had it already can tell.
"""

from __future__ import annotations

from typing import Any, TextIO

import orjson

from leadlawk_daemon.deliveries.ledger import DELIVERY_STATUSES, Delivery, DeliveryStatus, ledger_of
from leadlawk_daemon.store.base import Store

__all__ = ["delivery_letter_replay", "list_deliveries", "replay_delivery", "show_delivery"]


def _line(d: Delivery) -> str:
    when = d.delivered_at or d.next_attempt_at or d.created_at
    error = f"  {d.last_error}" if d.last_error else ""
    return (
        f"{d.id}  {d.status:<9} {d.destination:<20} job {d.job_id}  leads {len(d.leads)}  attempts {d.attempts}  "
        f"{'' if when is None else when.isoformat(timespec='seconds')}{error}"
    )


async def list_deliveries(store: Store, status: str | None, out: TextIO, *, as_json: bool = False) -> int:
    from leadlawk_daemon.control import ControlError

    if status is not None and status not in DELIVERY_STATUSES:
        raise ControlError(f"--status must be one of {', '.join(DELIVERY_STATUSES)} (got {status!r})")
    chosen: DeliveryStatus | None = status
    found = await ledger_of(store).list(status=chosen, limit=500)
    if as_json:
        out.write(orjson.dumps([d.to_dict() for d in found]).decode() + "\n")
    else:
        for d in found:
            out.write(_line(d) + "\n")
        if not found:
            out.write("no deliveries\n")
    return 0


async def show_delivery(store: Store, one: str, out: TextIO) -> int:
    from leadlawk_daemon.control import ControlError

    found = await ledger_of(store).get(one)
    if found is None:
        raise ControlError(f"no delivery {one!r}")
    out.write(orjson.dumps({**found.to_dict(), "place_ids": list(found.leads)}, option=orjson.OPT_INDENT_2).decode())
    out.write("\n")
    return 0


async def replay_delivery(store: Store, one: str, out: TextIO) -> int:
    """Send one delivery again (dead, failed or delivered); its dead letter, if any, is marked replayed."""
    from leadlawk_daemon.control import ControlError

    ledger = ledger_of(store)
    found = await ledger.get(one)
    if found is None:
        raise ControlError(f"no delivery {one!r}")
    if not await ledger.replay(one):
        out.write(f"{one}: already waiting to be sent\n")
        return 0
    for letter in await store.list_dead_letters(kind="delivery", limit=10_000):
        if _letter_delivery(letter.payload) == one:
            await store.mark_replayed(letter.id)
    out.write(f"{one}: replayed (the daemon sends it at its next look)\n")
    return 0


def _letter_delivery(payload: str) -> str | None:
    try:
        decoded: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    value = decoded.get("delivery_id") if isinstance(decoded, dict) else None
    return value if isinstance(value, str) else None


async def delivery_letter_replay(store: Store, payload: str) -> str | None:
    """``dlq replay`` of a ``delivery`` letter: the delivery goes back to pending; the problem if not."""
    one = _letter_delivery(payload)
    if one is None:
        return "a delivery dead letter needs its delivery_id to be replayed"
    ledger = ledger_of(store)
    if await ledger.get(one) is None:
        return f"delivery {one} no longer exists"
    await ledger.replay(one)  # already pending is fine: it will be sent
    return None
