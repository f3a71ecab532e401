"""``leadlawk collect`` and ``leadlawk demo``: one job, in-process, through the daemon's own tree.

Both run the same supervision tree as ``leadlawk run`` (actors, breakers, limiters, writer) with
no Redis and the HTTP server on an ephemeral loopback port, submit one job, show its progress on
stderr, and stop the tree the same staged way a SIGTERM would. ``demo`` first starts the offline
Google Maps replica and PageSpeed stand-in on loopback and points the configuration at them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from leadlawk_daemon.assembly import LeadLawkDaemon
from leadlawk_daemon.control import ControlError, limited_view_lines, write_export
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.settings import ConfigError, Settings, load_settings
from leadlawk_daemon.store.base import TERMINAL_STATUSES, Job
from leadlawk_daemon.terminal import JobProgressBar, is_terminal

if TYPE_CHECKING:  # the demo's replicas are imported only when the demo runs
    from leadlawk_daemon.replicas.dns import DnsReplica
    from leadlawk_daemon.replicas.sites import SitesReplica

__all__ = ["DEMO_SPEC", "collect", "demo"]

DEMO_SPEC: dict[str, Any] = {
    "query": "plumbers",
    "location": "Omaha, NE",
    "limit": 20,
    "min_rating": 4.0,
    "website": "any",
    "pagespeed": {"enabled": True, "strategies": ["mobile"], "max_score": 70},
    "max_runtime_s": 300,
}


async def collect(
    settings: Settings, spec: JobSpec, *, output: str | None, progress: TextIO, within: float | None = None
) -> tuple[Job, list[dict[str, Any]]]:
    """Run ``spec`` to its end in a private daemon; the finished job and its lead rows."""
    daemon = LeadLawkDaemon(settings)
    tree = asyncio.create_task(daemon.run(), name="collect-daemon")
    try:
        await _until_pipeline(daemon, tree)
        await daemon.admit(spec, "cli")  # the one admission every intake path shares
        job = await _follow(daemon, spec.id, progress, within or spec.max_runtime_s + 60.0)
        store = daemon.database.store
        assert store is not None
        rows = await store.lead_rows_for_export(job_id=spec.id)
    finally:
        daemon.request_shutdown("collect finished")
        code = await tree
    if code != 0:
        raise ControlError(f"the daemon's tree failed (exit status {code}); see the log above")
    if output:
        await write_export(rows, output, with_job=True)
    return job, rows


async def _until_pipeline(daemon: LeadLawkDaemon, tree: asyncio.Task[int]) -> None:
    while daemon.pipeline_service.pipeline is None or daemon.pipeline_service.pipeline.coordinator is None:
        if tree.done():
            raise ControlError(f"the daemon stopped before it was ready (exit status {tree.result()})")
        await asyncio.sleep(0.05)


async def _follow(daemon: LeadLawkDaemon, job_id: str, progress: TextIO, within: float) -> Job:
    if is_terminal(progress):
        with JobProgressBar(progress) as bar:
            return await _poll(daemon, job_id, within, lambda job: bar.update(job.to_dict()))
    began = time.monotonic()
    last = ""
    last_shown = 0.0

    def plain(job: Job) -> None:
        # A log file gets a line per change, at most every 2 s, and the last one always.
        nonlocal last, last_shown
        waiting = (job.progress or {}).get("waiting_on") or []
        line = (
            f"{job.status:<9} found {job.found:>4}  enriched {job.enriched:>4}  qualified {job.qualified:>4}"
            f"  written {job.written:>4}"
            + (f"  failed {job.failed:>4}" if job.failed else "")
            + (f"  waiting on {', '.join(map(str, waiting))}" if waiting else "")
        )
        if line == last:
            return
        if job.status in TERMINAL_STATUSES or time.monotonic() - last_shown >= 2.0:
            progress.write(f"{line}  {time.monotonic() - began:5.1f}s\n")
            last_shown = time.monotonic()
        last = line

    return await _poll(daemon, job_id, within, plain)


async def _poll(daemon: LeadLawkDaemon, job_id: str, within: float, show: Callable[[Job], None]) -> Job:
    """Show the job at each poll until it ends."""
    began = time.monotonic()
    while True:
        store = daemon.database.store
        job = await store.get_job(job_id) if store is not None else None
        if job is not None:
            show(job)
            if job.status in TERMINAL_STATUSES:
                return job
        if time.monotonic() - began > within:
            raise ControlError(f"job {job_id} did not finish within {within:g}s")
        await asyncio.sleep(0.25)


def summary(job: Job, rows: list[dict[str, Any]], out: TextIO) -> None:
    out.write(
        f"job {job.id}: {job.status}; {job.found} found, {job.enriched} enriched, "
        f"{job.qualified} qualified, {job.written} written"
        + (f", {job.failed} failed" if job.failed else "")
        + (f"; error: {job.error}" if job.error else "")
        + "\n"
    )
    for line in limited_view_lines(job.progress):
        out.write(line + "\n")
    if job.failed:
        # A lead's own failure is recorded on it and kept for replay; the job went on without it.
        out.write(
            f"{job.failed} lead(s) failed a stage (job_leads.status = failed, with the reason); "
            "`leadlawk dlq list` shows them, `leadlawk dlq replay --all` tries them again\n"
        )


def table(rows: list[dict[str, Any]], out: TextIO) -> None:
    """A readable table of leads: the demo's answer."""
    columns = [("#", 3), ("business", 30), ("rating", 6), ("reviews", 7), ("phone", 14), ("website", 30),
               ("mobile", 6), ("site", 14), ("email", 30), ("verdict", 24), ("qualified", 9)]
    out.write("  ".join(name.ljust(width) for name, width in columns) + "\n")
    out.write("  ".join("-" * width for _, width in columns) + "\n")
    for row in sorted(rows, key=lambda r: r.get("rank") or 0):
        perf = row.get("mobile_performance")
        broken = row.get("mobile_error")
        cells = [
            str(row.get("rank") or ""),
            str(row.get("name") or ""),
            "" if row.get("rating") is None else f"{row['rating']:.1f}",
            "" if row.get("review_count") is None else f"{row['review_count']:,}",
            str(row.get("phone") or ""),
            str(row.get("website") or "(none)"),
            "broken" if broken else ("" if perf is None else f"{perf:.0f}"),
            _site_verdict(row),
            str(row.get("primary_email") or row.get("site_emails") or "").split(";")[0],
            _email_verdict(row),
            "yes" if row.get("qualified") else "no",
        ]
        out.write("  ".join(_fit(cell, width) for cell, (_, width) in zip(cells, columns, strict=True)) + "\n")


def _site_verdict(row: dict[str, Any]) -> str:
    """The site's status, or what sells a new one: ``ok wix`` ``ok no-https`` ``dead``."""
    status = row.get("site_status")
    if status is None:
        return ""
    if status != "ok":
        return str(status)
    if row.get("site_https") is False:
        return "ok no-https"
    if row.get("site_mobile_viewport") is False:
        return "ok no-mobile"
    return f"ok {row.get('site_cms') or ''}".strip()


def _email_verdict(row: dict[str, Any]) -> str:
    """The primary address's verdict (docs/email-verdicts.md), ``deliverable role`` or ``deliverable
    free``; without one, what the site's first address got (``no_mail_domain``, ``disposable``)."""
    verdicts = row.get("site_email_verdicts") or []
    primary = next((v for v in verdicts if v.get("email") == row.get("primary_email")), None)
    if primary is None:
        return str(verdicts[0].get("status") or "") if verdicts else ""
    flags = ["role"] if primary.get("role") else []
    flags += ["free"] if primary.get("free_mail") else []
    flags += [] if primary.get("matches_website") else ["elsewhere"]  # not on the website's domain
    return " ".join(["deliverable", *flags])


def _fit(text: str, width: int) -> str:
    return (text[: width - 1] + "…") if len(text) > width else text.ljust(width)


@contextlib.asynccontextmanager
async def _replicas() -> AsyncIterator[tuple[str, str, SitesReplica, DnsReplica]]:
    from leadlawk_daemon.replicas.dns import serve_dns_replica
    from leadlawk_daemon.replicas.maps import serve_maps_replica
    from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica
    from leadlawk_daemon.replicas.sites import serve_sites_replica

    async with (
        serve_maps_replica("127.0.0.1", 0) as maps_url,
        serve_pagespeed_replica("127.0.0.1", 0) as psi_url,
        serve_sites_replica("127.0.0.1", 0) as sites,
        serve_dns_replica("127.0.0.1", 0) as dns,
    ):
        yield maps_url, psi_url, sites, dns


def demo_environment(
    maps_url: str, psi_url: str, base: Mapping[str, str], sites: SitesReplica | None = None,
    dns: DnsReplica | None = None,
) -> dict[str, str]:
    """The configuration of a demo run: the replicas, the SQLite default, no Redis, loopback HTTP;
    with ``sites``, site enrichment through the websites replica (its proxy and its CA)."""
    env = {k: v for k, v in base.items() if k not in ("REDIS_URL", "DATABASE_URL", "PAGESPEED_API_KEY")}
    env |= {
        "LEADLAWK__MAPS__BASE_URL": maps_url,
        "LEADLAWK__PAGESPEED__BASE_URL": psi_url,
        # Politeness is for Google; the replica on loopback needs none.
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "600",
        "LEADLAWK__SERVER__HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_LEVEL": base.get("LOG_LEVEL", "WARNING"),
    }
    if sites is not None:
        env |= {
            "LEADLAWK__SITES__ENABLED": "true",
            "LEADLAWK__SITES__PROXY": sites.base_url,
            "LEADLAWK__SITES__CA_FILE": str(sites.ca_path),
        }
    if dns is not None:  # the site emails' domains are asked of the DNS replica, and only of it
        env["LEADLAWK__EMAILS__DNS_SERVERS"] = f'["{dns.server}"]'
    return env


async def demo(out: TextIO, progress: TextIO) -> int:
    from leadlawk_daemon.jobspec import parse_job_spec

    began = time.monotonic()
    async with _replicas() as (maps_url, psi_url, sites, dns):
        progress.write(f"offline Google Maps replica at {maps_url}, PageSpeed stand-in at {psi_url}, "
                       f"websites replica (proxy) at {sites.base_url}, DNS replica at {dns.server}\n")
        environment = demo_environment(maps_url, psi_url, os.environ, sites, dns)
        settings = load_settings(environ=environment)
        spec = parse_job_spec(DEMO_SPEC, settings.server.max_body_bytes)
        progress.write(f'collecting "{spec.query}" in "{spec.location}" (limit {spec.limit}) into '
                       f"{settings.database.url}\n")
        job, rows = await collect(settings, spec, output=None, progress=progress, within=120)
        table(rows, out)
        summary(job, rows, out)
        nightly = await _nightly(environment, out, progress)
    out.write(f"done in {time.monotonic() - began:.1f}s; `leadlawk export --job {job.id}` exports them again\n")
    out.write(console_line(os.environ))
    return 0 if job.status == "succeeded" and nightly == 0 else 1


async def _nightly(environment: Mapping[str, str], out: TextIO, progress: TextIO) -> int:
    """The nightly setup, shown: a schedule fired at once, its digest delivered to the inbox replica
    (docs/deliveries.md)."""
    import secrets

    from leadlawk_daemon.deliveries.demo import nightly_demo
    from leadlawk_daemon.replicas.inbox import Inbox, serve_inbox

    secret = secrets.token_hex(16)
    async with serve_inbox(inbox=Inbox(secret=secret.encode())) as (inbox, url, _):
        return await nightly_demo(environment, {**DEMO_SPEC, "limit": 10}, inbox, url, secret, out, progress)


def console_address(settings: Settings) -> str:
    """The console's address for a browser on this machine, as ``leadlawk run`` with ``settings`` binds it."""
    host = settings.server.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # bound on every interface: this machine reaches it on loopback
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}/"


def console_line(environ: Mapping[str, str]) -> str:
    """Demo's last line: where the console is once the user runs ``leadlawk run`` (their own settings)."""
    try:
        settings = load_settings(environ=dict(environ))
    except ConfigError:  # a configuration problem is `leadlawk run`'s to report, with every key named
        return "the console: `leadlawk run`, then open its address (PORT) in a browser\n"
    sign_in = "; sign in with LEADLAWK_ADMIN_TOKEN" if settings.server.admin_token else ""
    return f"the console: run `leadlawk run`, then open {console_address(settings)}{sign_in}\n"


