"""``leadlawk fleet``: the daemons sharing this Redis, as ``GET /fleet`` shows them.

With ``REDIS_URL`` it reads the registry in Redis itself, so it works with no daemon on this host;
without, it asks the local daemon's ``GET /fleet`` (a fleet of one). A table for a person at a
terminal, the JSON of ``GET /fleet`` otherwise or with ``--json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import aiohttp
import orjson

from leadlawk_daemon.fleet.registry import read_members
from leadlawk_daemon.intake.reconnect import REDIS_ERRORS
from leadlawk_daemon.logs import redact
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.terminal import is_terminal

__all__ = ["FleetCommandError", "fleet_table", "show_fleet"]


class FleetCommandError(Exception):
    """The fleet could not be read; the text is the one line the user sees."""


async def _members(settings: Settings) -> list[dict[str, Any]]:
    if settings.redis.url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis.url, socket_connect_timeout=5, socket_timeout=10)
        try:
            return await read_members(client, settings.redis.prefix)
        except REDIS_ERRORS as exc:
            raise FleetCommandError(redact(f"Redis is unreachable: {type(exc).__name__}: {exc}")) from None
        finally:
            await client.aclose()
    base = f"http://127.0.0.1:{settings.server.port}"
    token = settings.server.admin_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(headers=headers) as http, http.get(f"{base}/fleet") as response:
            body = await response.json(content_type=None)
    except aiohttp.ClientConnectionError:
        raise FleetCommandError(
            f"no daemon answers at {base} and REDIS_URL is not set: set REDIS_URL to read the fleet"
        ) from None
    if response.status != 200 or not isinstance(body, dict):
        raise FleetCommandError(f"the daemon could not list the fleet ({response.status}): {body}")
    members = body.get("members")
    return [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []


async def show_fleet(settings: Settings, out: TextIO, *, as_json: bool = False) -> int:
    members = await _members(settings)
    if as_json or not is_terminal(out):
        out.write(orjson.dumps({"count": len(members), "members": members}).decode() + "\n")
    else:
        out.write(fleet_table(members))
    return 0


def _breakers(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return "-"
    trouble = [f"{name} {state}" for name, state in sorted(value.items()) if state != "closed"]
    return ", ".join(trouble) if trouble else "all closed"


def _exits(value: Any) -> str:
    """The Maps exits not closed, by name and state (docs/egress-pool.md), else how many are closed."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return "-"
    exits = [e for e in value if isinstance(e, Mapping)]
    trouble = [f"{e.get('egress')} {e.get('state')}" for e in exits if e.get("state") != "closed"]
    return ", ".join(trouble) if trouble else f"{len(exits)} closed"


def _quota(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return "-"
    return " ".join(f"{k}={_short(v)}" for k, v in value.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def fleet_table(members: Sequence[Mapping[str, Any]]) -> str:
    """One line per daemon: id, host, pid, version, start, jobs held, breakers not closed, Maps exits
    not closed, quota."""
    rows = [("id", "host", "pid", "version", "started", "jobs", "breakers", "exits", "quota")]
    for m in members:
        rows.append((
            str(m.get("id", "?")),
            str(m.get("host", "?")),
            str(m.get("pid", "?")),
            str(m.get("version", "?")),
            str(m.get("started_at", "?")),
            str(m.get("jobs_held", 0)),
            _breakers(m.get("breakers")),
            _exits(m.get("egress")),
            _quota(m.get("quota")),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
             for row in rows]
    lines.append(f"{len(members)} daemon{'s' if len(members) != 1 else ''} alive")
    return "\n".join(lines) + "\n"
