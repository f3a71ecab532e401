"""Google's JSON payloads: the ``)]}'`` guard prefix and the ``{"d": ")]}'…"}`` envelope removed."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["XSSI_PREFIX", "decode_payload"]

# Google prefixes JSON with this line so that a page cannot load it as a script.
XSSI_PREFIX = ")]}'"


def decode_payload(text: str | bytes) -> Any:
    """The JSON value in ``text``; raises ``ValueError`` saying what is wrong when there is none."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    body = text.strip().removeprefix("\ufeff").strip()
    body = body.removeprefix(XSSI_PREFIX).strip()
    if not body:
        raise ValueError("empty payload")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    # search?tbm=map sometimes answers {"c": 0, "d": ")]}'\n[…]"}: the real payload is the string.
    if isinstance(value, dict) and isinstance(inner := value.get("d"), str):
        return decode_payload(inner)
    return value
