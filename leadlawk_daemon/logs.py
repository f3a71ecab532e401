"""Logging on stdout, with every registered secret redacted from every line.

JSON lines for machines (a Procfile's collector, a pipe, a file, or ``LOG_FORMAT=json``); one
readable line per record (time, level, event, key=value) when a person watches a terminal, or with
``LOG_FORMAT=text``.
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

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "mask_url_passwords", "redact", "register_secret"]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# A key in a query string is a secret whatever its value: Google's APIs take `key=` in the URL.
_KEY_PARAM = re.compile(r"(?i)([?&](?:key|api_key|apikey|token)=)[^&\s\"'#]+")
# The password of a URL's userinfo (DATABASE_URL, REDIS_URL): postgresql://app:PASSWORD@host/db and
# redis://:PASSWORD@host. The user name stays: it says which account, and is no secret.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/?#@'\"]*:)[^\s@'\"]+@")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears in a log line, error text, event or dead letter."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def mask_url_passwords(text: str) -> str:
    """``postgresql://app:***@host/db``, ``redis://:***@host``: a URL's password masked wherever it is."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def redact(text: str) -> str:
    text = mask_url_passwords(_KEY_PARAM.sub(r"\1***", text))
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


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
