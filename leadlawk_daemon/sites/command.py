"""``leadlawk site FILE|URL…``: the site extraction run by hand, one JSON object per target.

A target naming an existing file is a saved page, read offline (contacts and markup facts; the
network facts stay null). Anything else is a website URL, read through the same client the
daemon uses, with the configured proxy and limits. A target that cannot be read prints
``{"site": …, "error": …}`` and makes the exit status 1; the others still print. A URL whose own
address the egress policy refuses (loopback, private, metadata…, unless ``sites.allowed_networks``
lists it) is not read: one line on stderr says why, and the exit status is 1.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from leadlawk_daemon.resilience.worker_pool import PoolUnavailable, TaskLost, WorkerPool
from leadlawk_daemon.settings import SitesSettings
from leadlawk_daemon.sites.client import SiteClient, normalize_site_url, report_from_facts
from leadlawk_daemon.sites.extract_pool import CLI_BUDGET, extraction_pool, page_facts
from leadlawk_daemon.sites.fetch import FetchFailure, ProxyUnreachable
from leadlawk_daemon.sites.report import SiteReport, SiteStatus

__all__ = ["run_site_command"]

_MAX_FILE_BYTES = 16 * 1024 * 1024


async def _from_file(pages: WorkerPool, path: Path, max_bytes: int) -> dict[str, Any]:
    """A saved page read in the same budgeted worker as the daemon's pages: a page that would
    hold it is stopped, and printed ``unreadable`` / ``too slow``."""
    data = await asyncio.to_thread(_read_head, path, min(max_bytes, _MAX_FILE_BYTES))
    url = f"file://{path.name}"
    try:
        facts = await pages.run(page_facts, data, None, url, datetime.now(UTC).year + 1)
    except TaskLost as exc:
        report = SiteReport(site="", url=url, status=SiteStatus.UNREADABLE, reason=exc.reason)
    else:
        report = report_from_facts(facts, url)
    summary = report.summary()
    summary["site"] = str(path)
    return summary


def _read_head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


async def _from_files(settings: SitesSettings, paths: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    # The budget is CPU; the wall limit, twice that, stops a page the machine is too busy to read.
    budget = min(settings.parse_budget, CLI_BUDGET)
    try:
        async with extraction_pool(1, budget, wall=2 * budget) as pages:
            for target in paths:
                try:
                    out[target] = await _from_file(pages, Path(target), settings.max_bytes)
                except OSError as exc:
                    out[target] = {"site": target, "error": f"cannot read {target}: {exc.strerror}"}
    except PoolUnavailable as exc:
        for target in paths:
            out.setdefault(target, {"site": target, "error": f"cannot read pages here: {exc}"})
    return out


async def _from_urls(settings: SitesSettings, urls: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with SiteClient(settings) as client:
        for url in urls:
            try:
                await client.fetcher.check(normalize_site_url(url))
            except FetchFailure as exc:
                out[url] = {"site": url, "refused": f"{url}: {exc.reason} (sites.allowed_networks exempts a network)"}
                continue
            except ValueError:
                pass  # not a website URL: inspect says so, as for any other target
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


def run_site_command(settings: SitesSettings, targets: list[str], out: TextIO, err: TextIO | None = None) -> int:
    status = 0
    urls = [t for t in targets if _is_url(t)]
    fetched = asyncio.run(_from_urls(settings, urls)) if urls else {}
    files = [t for t in targets if t not in fetched]
    read = asyncio.run(_from_files(settings, files)) if files else {}
    for target in targets:
        result = fetched[target] if target in fetched else read[target]
        if "refused" in result:
            (err or sys.stderr).write(f"leadlawk site: {result['refused']}\n")
            status = 1
            continue
        status = 1 if "error" in result else status
        out.write(orjson.dumps(result).decode() + "\n")
    return status
