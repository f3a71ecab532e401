"""JSON-lines logging on stdout, with every registered secret redacted from every line."""

from __future__ import annotations

import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["JsonFormatter", "configure_logging", "mask_url_passwords", "redact", "register_secret"]

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


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter at INFO is noise in an unattended daemon's log.
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
