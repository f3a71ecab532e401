"""The exits of ``maps.egress``: direct, or a proxy, each with a label that never shows its secrets.

An exit's *identity* is its proxy URL without credentials (scheme, host, port); its *hash*
(``sha256`` of that, 16 hex digits) names its politeness budget in Redis, so daemons configured
with the same proxy share one budget whatever they call it. Its *name* is the configured ``name``,
else ``p-`` and the hash's first 8 digits: the label in logs, metrics, events, ``/fleet`` and the
console. Neither holds a user name or password.

Credentials are resolved here, once, when the exit is built: a password written ``${ENV_NAME}``
in the URL is read from the environment, a ``credentials_file`` holds ``user:password``. A
password is registered with the log redactor the moment it is read, so that even an error text
quoting a proxy URL whole is masked.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from playwright.async_api import ProxySettings

from leadlawk_daemon.logs import register_secret
from leadlawk_daemon.settings import EgressExitSettings, MapsSettings

__all__ = ["DIRECT", "EgressConfigError", "Exit", "exit_hash", "resolve_exits"]

DIRECT = "direct"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_MAX_CREDENTIALS_FILE = 4096


class EgressConfigError(ValueError):
    """``maps.egress`` names an exit that cannot be built (a missing variable or file, a clash)."""


@dataclass(frozen=True, slots=True)
class Exit:
    """One way out to Google Maps. ``repr`` and ``str`` show the name only."""

    name: str
    server: str | None = field(repr=False)  # scheme://host:port without credentials; None: direct
    hash: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def direct(self) -> bool:
        return self.server is None

    @property
    def kind(self) -> str:
        return DIRECT if self.server is None else self.server.split("://", 1)[0]

    def playwright_proxy(self) -> ProxySettings | None:
        """The proxy for a Playwright context pinned to this exit (None: direct)."""
        if self.server is None:
            return None
        proxy: ProxySettings = {"server": self.server}
        if self.username is not None:
            proxy["username"] = self.username
            proxy["password"] = self.password or ""
        return proxy

    def __str__(self) -> str:
        return self.name


def exit_hash(server: str | None, hostname: str) -> str:
    """The exit's budget key: the proxy's identity, or for direct this host (one address)."""
    identity = f"direct:{hostname}" if server is None else server
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _credentials(
    url_user: str | None, url_password: str | None, file: str | None, environ: Mapping[str, str], where: str
) -> tuple[str | None, str | None]:
    if file is not None:
        path = Path(file)
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_CREDENTIALS_FILE + 1)
        except OSError as exc:
            raise EgressConfigError(f"{where}: credentials_file cannot be read ({exc.strerror})") from None
        if len(raw) > _MAX_CREDENTIALS_FILE:
            raise EgressConfigError(f"{where}: credentials_file is larger than {_MAX_CREDENTIALS_FILE} bytes")
        line = raw.decode("utf-8", "replace").strip().splitlines()[0] if raw.strip() else ""
        user, colon, password = line.partition(":")
        if not user or not colon:
            raise EgressConfigError(f"{where}: credentials_file must hold one line user:password")
        return user, password
    if url_user is None:
        return None, None
    if url_password is None:
        return unquote(url_user), None
    ref = _ENV_REF.match(url_password)
    if ref is None:  # settings refuse a literal password; a hand-built setting may still hold one
        raise EgressConfigError(f"{where}: a proxy password must be ${{ENV_NAME}} or come from credentials_file")
    value = environ.get(ref.group(1))
    if value is None:
        raise EgressConfigError(f"{where}: the environment variable {ref.group(1)} is not set")
    return unquote(url_user), value


def _one(entry: str | EgressExitSettings, index: int, environ: Mapping[str, str], hostname: str) -> Exit:
    setting = entry if isinstance(entry, EgressExitSettings) else EgressExitSettings(url=entry)
    where = f"maps.egress[{index}]"
    if setting.url == DIRECT:
        if setting.credentials_file is not None:
            raise EgressConfigError(f"{where}: direct takes no credentials")
        return Exit(setting.name or DIRECT, None, exit_hash(None, hostname))
    # The password may be ${NAME}, which urlsplit takes for part of the host: split by hand.
    scheme, _, rest = setting.url.partition("://")
    userinfo, at, hostport = rest.rstrip("/").rpartition("@")
    if not at:
        userinfo, hostport = "", rest.rstrip("/")
    parts = urlsplit(f"{scheme}://{hostport}")
    try:
        port = parts.port
    except ValueError:
        raise EgressConfigError(f"{where}: the proxy's port is not a number") from None
    if not parts.hostname or port is None:
        raise EgressConfigError(f"{where}: a proxy URL needs a host and a port")
    server = f"{scheme}://{hostport.lower()}"
    user, colon, password = userinfo.partition(":")
    username, secret = _credentials(user or None, password if colon else None, setting.credentials_file, environ, where)
    if scheme == "socks5" and username is not None:
        raise EgressConfigError(f"{where}: Chromium does not support SOCKS5 proxy authentication")
    register_secret(secret)
    digest = exit_hash(server, hostname)
    return Exit(setting.name or f"p-{digest[:8]}", server, digest, username, secret)


def resolve_exits(
    maps: MapsSettings, environ: Mapping[str, str] | None = None, hostname: str | None = None
) -> tuple[Exit, ...]:
    """Every exit of ``maps.egress``, credentials read; raises :class:`EgressConfigError`."""
    env = os.environ if environ is None else environ
    host = hostname or os.uname().nodename
    exits: Sequence[Exit] = [_one(entry, i, env, host) for i, entry in enumerate(maps.egress)]
    hashes = [e.hash for e in exits]
    if len(set(hashes)) != len(hashes):
        raise EgressConfigError("maps.egress: the same exit is listed twice")
    names = [e.name for e in exits]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise EgressConfigError(f"maps.egress: exit names must differ ({', '.join(clashes)} twice)")
    return tuple(exits)
