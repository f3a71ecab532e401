"""Logging on stdout, with every credential masked in every line.

JSON lines for machines (a Procfile's collector, a pipe, a file, or ``LOG_FORMAT=json``); one
readable line per record (time, level, event, key=value) when a person watches a terminal, or with
``LOG_FORMAT=text``.

:func:`redact` is the one masking function: the log formatters, error texts, dead letters and
``leadlawk config show`` all go through it. It reads text from outside (pages, payloads, error
messages quoting them), so it is a single pass of one regex whose every repeat either is bounded or
runs over characters its neighbours cannot take (docs/masking.md says why each part is linear).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "redact", "register_secret"]

# Names whose value is a credential wherever they appear: a query parameter (``?key=``), a keyword
# (``password=`` in a libpq DSN), a mapping key (``"token": "…"``). A whole word or the last part of
# a name (``api_key``, ``client-secret``, ``db.password``), in any case; Google's session and consent
# cookies (``SID``, ``HSID``, ``__Secure-1PSID``, ``NID``, ``SOCS``) too, for a cookie header or jar.
_NAMES = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|access_?token|api_?key|key|auth|sig(?:nature)?"
    r"|credentials?|session(?:_?id)?|cookie"
    r"|(?:[hs]|api|sapi|o|l|[13]p)?sid(?:cc|ts)?|nid|socs|consent|aec|enid)s?"
)
# The first letters of _NAMES: a one-step test that spares most positions the whole alternation.
_FIRST = "".join(sorted(set("acehklnopst13") | set("acehklnopst".upper())))
# The alternatives after the registered secrets (which come first: see _compile). Each names the
# group whose text is masked.
_STRUCTURE = (
    # A URL's userinfo, up to the last "@" of the authority (as urllib reads it): no "/" in it, so
    # the runs after two "://" never overlap.
    r"://(?P<userinfo>[^\s/?#\"'<>\\]*)@"
    # name=value: a quoted value to its quote (or the line's end), else to a delimiter.
    rf"|(?=[{_FIRST}])(?<![A-Za-z0-9])(?i:{_NAMES})(?:=(?P<param>'[^'\r\n]*+'?|\"[^\"\r\n]*+\"?|[^\s&#\"'<>]*+)"
    # "name": "value" (JSON) and 'name': 'value' (a Python repr), escapes included.
    r"|\"\s{0,8}+:\s{0,8}+\"(?P<dq>(?:[^\"\\\r\n]|\\.)*+)"
    r"|'\s{0,8}+:\s{0,8}+'(?P<sq>(?:[^'\\\r\n]|\\.)*+))"
    # An HTTP header that carries a credential: the rest of its line.
    r"|(?=[ACPSXacpsx])(?<![A-Za-z0-9-])(?i:(?:proxy-)?authorization|(?:set-)?cookie|x-(?:goog-)?api-key)"
    r"[ \t]{0,8}+:[ \t]{0,8}+(?P<header>[^\r\n]*+)"
    # A bearer token in free text.
    r"|(?=[Bb])(?<![A-Za-z0-9])(?i:bearer)[ \t]{1,8}+(?P<bearer>[\w.~+/-]++=*+)"
)
_MASKED_GROUPS = ("param", "dq", "sq", "header", "bearer")
_MASK = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _compile(secrets: set[str]) -> re.Pattern[str]:
    # The registered values as literals, longest first so that a secret holding another is masked
    # whole; sre skips an alternative on its first character, so they cost one comparison each.
    literals = "|".join(re.escape(s) for s in sorted(secrets, key=lambda s: (-len(s), s)))
    return re.compile((f"(?P<secret>{literals})|" if literals else "") + _STRUCTURE)


_pattern = _compile(_secrets)


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears in a log line, error text, event or dead letter."""
    global _pattern
    if value and len(value) >= 4:
        with _secrets_lock:
            if value not in _secrets:
                _secrets.add(value)
                _pattern = _compile(_secrets)


def _masked(match: re.Match[str]) -> str:
    whole = match.group(0)
    if match.lastgroup == "secret":
        return _MASK
    userinfo = match.group("userinfo")
    if userinfo is not None:
        # With a password the user name stays: it says which account. Alone, userinfo is usually
        # the credential itself (https://TOKEN@host, a Sentry DSN's key).
        user, colon, _ = userinfo.partition(":")
        return f"://{user}:{_MASK}@" if colon else (f"://{_MASK}@" if userinfo else whole)
    for name in _MASKED_GROUPS:
        value = match.group(name)
        if value:
            start, end = match.start(name) - match.start(), match.end(name) - match.start()
            return whole[:start] + _MASK + whole[end:]
    return whole


def redact(text: str) -> str:
    """``text`` with every credential masked as ``***``, in one pass: the registered secrets, a URL's
    userinfo (``postgresql://app:***@db``, ``http://***@proxy``), credential parameters and keys
    (``?key=***``, ``password=***``, ``"api_key": "***"``), credential headers and bearer tokens."""
    return _pattern.sub(_masked, text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return redact(value) if isinstance(value, str) else value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": redact(record.getMessage()),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _jsonable(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """``15:46:35 WARNING job waiting on an outage job_id=j1 waiting_on=['maps']``: the JSON line's
    fields, redacted the same way, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        parts = [when, f"{record.levelname:<7}", redact(record.getMessage())]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                shown = _jsonable(value)
                parts.append(f"{key}={shown!r}" if isinstance(shown, str) and " " in shown else f"{key}={shown}")
        line = " ".join(parts)
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def _formatter(stream: TextIO) -> logging.Formatter:
    chosen = os.environ.get("LOG_FORMAT", "").strip().lower()
    if chosen == "json":
        return JsonFormatter()
    if chosen == "text":
        return TextFormatter()
    from leadlawk_daemon.terminal import is_terminal

    return TextFormatter() if is_terminal(stream) else JsonFormatter()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Log records to ``stream`` (stdout): text on a terminal, JSON lines elsewhere; ``LOG_FORMAT``
    (``json`` or ``text``) decides instead when set."""
    target = stream or sys.stdout
    handler = logging.StreamHandler(target)
    handler.setFormatter(_formatter(target))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter at INFO is noise in an unattended daemon's log.
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    chosen = os.environ.get("LOG_FORMAT", "")
    if chosen.strip().lower() not in ("", "json", "text"):
        logging.getLogger(__name__).warning(
            "LOG_FORMAT must be json or text; chose by the terminal instead", extra={"log_format": chosen[:40]}
        )
