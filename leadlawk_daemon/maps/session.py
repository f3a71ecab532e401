"""A signed-in Google session for the browser: imported once, loaded by every browser context.

``leadlawk maps-session import FILE`` reads the cookies a person exported from a signed-in
browser — a Playwright storage state, the JSON list that cookie extensions write (``name``,
``value``, ``domain``, ``path``, ``expirationDate``…) or a Netscape ``cookies.txt`` — and writes
``maps.session_file`` as a Playwright storage state, readable by its owner only (0600).

The scraper hands the file's cookies to each browser context before it opens a search, and again
whenever the file changes: importing a fresh session needs no restart. Cookie values are secrets:
they are registered with the log redactor when read, and no error message quotes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from leadlawk_daemon.logs import register_secret

__all__ = ["SessionCookies", "SessionError", "parse_cookies", "write_session_file"]

log = logging.getLogger(__name__)

_SAME_SITE = {"lax": "Lax", "strict": "Strict", "none": "None", "no_restriction": "None", "unspecified": "Lax"}


class SessionError(ValueError):
    """The session file or export could not be read: says what was wrong, never a cookie's value."""


def _cookie(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SessionError(f"{where}: expected a cookie object")
    name, value, domain = raw.get("name"), raw.get("value"), raw.get("domain")
    if not isinstance(name, str) or not name or not isinstance(value, str):
        raise SessionError(f"{where}: a cookie needs a name and a string value")
    if not isinstance(domain, str) or not domain:
        raise SessionError(f"{where}: cookie {name!r} has no domain")
    expires = raw.get("expires", raw.get("expirationDate"))
    if raw.get("session") is True or expires is None:
        expires = -1
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise SessionError(f"{where}: cookie {name!r} has an expiry that is not a number")
    same_site = _SAME_SITE.get(str(raw.get("sameSite") or "lax").casefold(), "Lax")
    return {
        "name": name,
        "value": value,
        "domain": domain,
        "path": str(raw.get("path") or "/"),
        "expires": float(expires),
        "httpOnly": bool(raw.get("httpOnly", False)),
        "secure": bool(raw.get("secure", False)),
        "sameSite": same_site,
    }


def _netscape(text: str) -> list[dict[str, Any]]:
    cookies: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        http_only = line.startswith("#HttpOnly_")
        if http_only:
            line = line.removeprefix("#HttpOnly_")
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 7:
            raise SessionError(f"cookies.txt line {number}: expected 7 tab-separated fields, got {len(parts)}")
        domain, _sub, path, secure, expires, name, value = parts
        try:
            expiry = float(expires)
        except ValueError:
            raise SessionError(f"cookies.txt line {number}: the expiry is not a number") from None
        cookies.append(_cookie(
            {"name": name, "value": value, "domain": domain, "path": path, "httpOnly": http_only,
             "secure": secure.upper() == "TRUE", "expires": expiry if expiry > 0 else -1},
            f"cookies.txt line {number}",
        ))
    return cookies


def parse_cookies(text: str) -> list[dict[str, Any]]:
    """Playwright cookie objects from a storage state, an extension's JSON export or cookies.txt."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise SessionError(f"not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        if isinstance(data, dict):
            raw = data.get("cookies")
            if not isinstance(raw, list):
                raise SessionError("a storage state needs a \"cookies\" list")
        else:
            raw = data
        cookies = [_cookie(item, f"cookie {i + 1}") for i, item in enumerate(raw)]
    else:
        cookies = _netscape(text)
    if not cookies:
        raise SessionError("no cookies found")
    for cookie in cookies:
        register_secret(cookie["value"])
    return cookies


def write_session_file(path: str | Path, cookies: list[dict[str, Any]]) -> None:
    """``cookies`` as a Playwright storage state at ``path``, mode 0600 from the first byte."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"cookies": cookies, "origins": []}, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)


class _Context(Protocol):
    async def add_cookies(self, cookies: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[int, int]
    cookies: list[dict[str, Any]]


class SessionCookies:
    """``maps.session_file``'s cookies, handed to each browser context once per version of the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._loaded: _Loaded | None = None
        self._applied: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()
        self._complained: str | None = None

    def _read(self) -> _Loaded | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if self._loaded is None or self._loaded.stamp != stamp:
            try:
                text = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SessionError(f"maps.session_file {self.path}: {exc.__class__.__name__}") from None
            try:
                self._loaded = _Loaded(stamp, parse_cookies(text))
            except SessionError as exc:
                raise SessionError(f"maps.session_file {self.path}: {exc}") from None
        return self._loaded

    def expired(self, now: float | None = None) -> bool:
        """Whether every cookie with an expiry has passed it (the session is certainly signed out)."""
        loaded = self._read()
        if loaded is None:
            return True
        now = time.time() if now is None else now
        dated = [c["expires"] for c in loaded.cookies if c["expires"] > 0]
        return bool(dated) and all(expires < now for expires in dated)

    async def apply(self, context: _Context) -> bool:
        """Give ``context`` the session's cookies unless it has this version already; True if given.
        A file that cannot be read is said once and searched without (signed out), not a crash."""
        try:
            loaded = await asyncio.to_thread(self._read)
        except SessionError as exc:
            if str(exc) != self._complained:
                self._complained = str(exc)
                log.error("the Google Maps session file is unusable; searching signed out", extra={"error": str(exc)})
            return False
        self._complained = None
        if loaded is None or self._applied.get(context) == loaded.stamp:
            return False
        await context.add_cookies(loaded.cookies)
        self._applied[context] = loaded.stamp
        return True
