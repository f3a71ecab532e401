"""``leadlawk site FILE|URL…``: the site extraction run by hand, one JSON object per target.

A target naming an existing file is a saved page, read offline (contacts and markup facts; the
network facts stay null). Anything else is a website URL, read through the same client the
daemon uses, with the configured proxy and limits. A target that cannot be read prints
``{"site": …, "error": …}`` and makes the exit status 1; the others still print.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from leadlawk_daemon.settings import SitesSettings
from leadlawk_daemon.sites.client import SiteClient, report_from_html
from leadlawk_daemon.sites.fetch import ProxyUnreachable, decode_body

__all__ = ["run_site_command"]

_MAX_FILE_BYTES = 16 * 1024 * 1024


def _from_file(path: Path, max_bytes: int) -> dict[str, Any]:
    with path.open("rb") as handle:
        data = handle.read(min(max_bytes, _MAX_FILE_BYTES))
    report = report_from_html(decode_body(data, None), f"file://{path.name}", newest_year=datetime.now(UTC).year + 1)
    summary = report.summary()
    summary["site"] = str(path)
    return summary


async def _from_urls(settings: SitesSettings, urls: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with SiteClient(settings) as client:
        for url in urls:
            try:
                out[url] = (await client.inspect(url)).summary()
            except (ValueError, ProxyUnreachable) as exc:
                out[url] = {"site": url, "error": str(exc)}
    return out


def _is_url(target: str) -> bool:
    """``https://…`` or a bare host (``acme.com``); a path that names no file is still a path."""
    if "://" in target:
        return True
    return not Path(target).exists() and "/" not in target and not target.endswith((".html", ".htm"))


def run_site_command(settings: SitesSettings, targets: list[str], out: TextIO) -> int:
    status = 0
    urls = [t for t in targets if _is_url(t)]
    fetched = asyncio.run(_from_urls(settings, urls)) if urls else {}
    for target in targets:
        if target in fetched:
            result = fetched[target]
        else:
            try:
                result = _from_file(Path(target), settings.max_bytes)
            except OSError as exc:
                result = {"site": target, "error": f"cannot read {target}: {exc.strerror}"}
        status = 1 if "error" in result else status
        out.write(orjson.dumps(result).decode() + "\n")
    return status
