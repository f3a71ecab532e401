"""``leadlawk``: the command line (docs/interfaces.md "CLI").

Exit status: 0 success, 1 failure at run time, 2 bad usage or bad configuration. Errors are one
readable line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from leadlawk_daemon.logs import configure_logging, register_secret
from leadlawk_daemon.settings import ConfigError, Settings, load_settings, masked
from leadlawk_daemon.sites.report import SiteStatus

if TYPE_CHECKING:
    from leadlawk_daemon.jobspec import JobSpec

__all__ = ["main"]


class UsageError(Exception):
    """Bad usage: exit status 2."""


class Failure(Exception):
    """A failure at run time: exit status 1."""


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    register_secret(settings.pagespeed.api_key)
    register_secret(settings.server.admin_token)
    return settings


def _run(args: argparse.Namespace) -> int:
    from leadlawk_daemon.assembly import build_daemon
    from leadlawk_daemon.daemon import run_daemon

    settings = _settings(args)
    configure_logging(settings.logging.level)
    return run_daemon(lambda: build_daemon(settings), settings.shutdown.budget)


def _config(args: argparse.Namespace) -> int:
    if args.action == "check":
        load_settings(args.file or getattr(args, "config", None))
        print("configuration is valid")
        return 0
    settings = _settings(args)
    sys.stdout.write(yaml.safe_dump(masked(settings), sort_keys=False))
    return 0


def _parse(args: argparse.Namespace) -> int:
    from leadlawk_daemon.maps.parse_command import run_parse

    return run_parse(args.files, sys.stdout)


def _replica(args: argparse.Namespace) -> int:
    import uvloop

    if args.which == "maps":
        from leadlawk_daemon.replicas.maps import run_maps_replica

        coro = run_maps_replica(args.host, args.port, args.seed)
    elif args.which == "proxy":
        from leadlawk_daemon.replicas.proxy import run_proxy_replica

        coro = run_proxy_replica(args.count, args.host, args.port)
    elif args.which == "inbox":
        from leadlawk_daemon.replicas.inbox import run_inbox_replica

        coro = run_inbox_replica(args.host, args.port, args.smtp_port, args.secret)
    elif args.which == "dns":
        from leadlawk_daemon.replicas.dns import run_dns_replica

        coro = run_dns_replica(args.host, args.port, args.seed)
    elif args.which == "sites":
        from leadlawk_daemon.replicas.sites import run_sites_replica

        coro = run_sites_replica(args.host, args.port, args.seed)
    else:
        from leadlawk_daemon.replicas.pagespeed import run_pagespeed_replica

        coro = run_pagespeed_replica(args.host, args.port, args.seed)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(coro)
    return 0


def _site(args: argparse.Namespace) -> int:
    from leadlawk_daemon.sites.command import run_site_command

    return run_site_command(_settings(args).sites, args.targets, sys.stdout)


def _migrate(args: argparse.Namespace) -> int:
    from leadlawk_daemon.store import open_store_from_settings

    settings = _settings(args)

    async def migrate() -> list[int]:
        async with open_store_from_settings(settings.database) as store:
            return await store.migrate()

    applied = asyncio.run(migrate())
    print(f"schema up to date ({len(applied)} migration(s) applied now)")
    return 0


def _control(args: argparse.Namespace) -> int:
    """The operator commands of :mod:`leadlawk_daemon.control`, each one asyncio run."""
    from leadlawk_daemon import control

    settings = _settings(args)
    out = sys.stdout
    try:
        if args.command == "submit":
            spec = _spec_from_args(args, settings, job_id=args.id)
            return asyncio.run(control.submit_job(settings, spec, wait=args.wait, out=out))
        if args.command == "jobs":
            return asyncio.run(control.list_jobs(settings, args.status, out))
        if args.command == "status":
            return asyncio.run(control.show_job(settings, args.id, out, as_json=args.json))
        if args.command == "cancel":
            return asyncio.run(control.cancel_job(settings, args.id, out))
        if args.command == "export":
            return asyncio.run(
                control.export_leads(
                    settings, job_id=args.job, qualified=args.qualified, fmt=args.format, output=args.output, out=out,
                    new_since=args.new_since, crm=args.crm,
                )
            )
        if args.command == "dlq":
            if args.action == "list":
                listing = control.list_dead_letters(settings, kind=args.kind, include_replayed=args.all, out=out)
                return asyncio.run(listing)
            if args.action == "show":
                if args.id is None:
                    raise UsageError("dlq show needs an ID")
                return asyncio.run(control.show_dead_letter(settings, args.id, out))
            if args.id is None and not args.all:
                raise UsageError("dlq replay needs an ID, or --all")
            return asyncio.run(control.replay_dead_letters(settings, None if args.all else args.id, out))
    except control.ControlError as exc:
        raise Failure(str(exc)) from None
    raise UsageError(f"unknown command {args.command}")


def _deliveries(args: argparse.Namespace) -> int:
    """``deliveries list|show ID|replay ID``: finished jobs' digests and how their sending stands."""
    from leadlawk_daemon.control import ControlError
    from leadlawk_daemon.deliveries import command
    from leadlawk_daemon.store import open_store_from_settings

    settings = _settings(args)
    if args.action != "list" and not args.id:
        raise UsageError(f"deliveries {args.action} needs an ID")

    async def run() -> int:
        async with open_store_from_settings(settings.database, migrate=True) as store:
            if args.action == "list":
                return await command.list_deliveries(store, args.status, sys.stdout, as_json=args.json)
            if args.action == "show":
                return await command.show_delivery(store, args.id, sys.stdout)
            return await command.replay_delivery(store, args.id, sys.stdout)

    try:
        return asyncio.run(run())
    except ControlError as exc:
        raise Failure(str(exc)) from None


def _spec_from_args(args: argparse.Namespace, settings: Settings, *, job_id: str | None) -> JobSpec:
    """The job spec of ``submit``'s options (:func:`_job_options`): ``submit`` and ``schedule add``.
    Raises ``control.ControlError`` naming every problem."""
    from leadlawk_daemon import control

    return control.spec_from_options(
        args.query,
        location=args.location,
        limit=args.limit,
        min_rating=args.min_rating,
        min_reviews=args.min_reviews,
        website=args.website,
        pagespeed=not args.no_pagespeed,
        strategies=args.strategy,
        max_score=args.max_score,
        max_runtime_s=args.max_runtime,
        priority=args.priority,
        job_id=job_id,
        max_bytes=settings.server.max_body_bytes,
        **_area_options(args, settings),
        site=_site_filters(args),
        independent_only=args.independent_only,
        max_branches=args.max_branches,
        include_addresses=args.include_addresses,
        notify=getattr(args, "notify", None),  # submit's; a schedule's destinations are its --deliver
        destinations=frozenset(settings.destinations),
    )


def _schedule(args: argparse.Namespace) -> int:
    """``schedule add|list|show|pause|resume|remove|run-now`` (docs/schedules.md)."""
    from leadlawk_daemon import control
    from leadlawk_daemon.schedules import command

    settings = _settings(args)
    out = sys.stdout
    try:
        if args.action == "add":
            try:
                spec = _spec_from_args(args, settings, job_id=None)
            except control.ControlError as exc:
                raise Failure(str(exc)) from None
            definition = command.definition_from(
                spec.to_dict(), schedule_id=args.id, name=args.name, cron=args.cron, tz=args.tz,
                deliver=args.deliver, catch_up=args.catch_up, overlap=args.overlap,
                deliver_empty=not args.no_deliver_empty, paused=args.paused,
            )  # fmt: skip
            return asyncio.run(command.add(settings, definition, out))
        if args.action == "list":
            return asyncio.run(command.list_schedules(settings, out, as_json=args.json))
        if args.action == "show":
            return asyncio.run(command.show(settings, args.id, out))
        if args.action == "run-now":
            return asyncio.run(command.run_now(settings, args.id, out))
        return asyncio.run(command.change(settings, args.action, args.id, out))
    except command.ScheduleCommandError as exc:
        raise Failure(str(exc)) from None


def _fleet(args: argparse.Namespace) -> int:
    """``fleet``: the daemons sharing this Redis (a table on a terminal, JSON otherwise)."""
    from leadlawk_daemon.fleet.command import FleetCommandError, show_fleet

    settings = _settings(args)
    try:
        return asyncio.run(show_fleet(settings, sys.stdout, as_json=args.json))
    except FleetCommandError as exc:
        raise Failure(str(exc)) from None


def _maps_session(args: argparse.Namespace) -> int:
    """``maps-session import FILE``: a browser's exported cookies as ``maps.session_file`` (0600)."""
    from leadlawk_daemon.maps.session import SessionError, parse_cookies, write_session_file

    settings = _settings(args)
    target = args.to or settings.maps.session_file
    if target is None:
        raise UsageError("maps.session_file is not set: set it (or LEADLAWK__MAPS__SESSION_FILE), or give --to FILE")
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(f"{args.file}: cannot be read ({type(exc).__name__})") from None
    try:
        cookies = parse_cookies(text)
    except SessionError as exc:
        raise Failure(f"{args.file}: {exc}") from None
    write_session_file(target, cookies)
    domains = ", ".join(sorted({str(c["domain"]) for c in cookies}))
    # Names and domains only: the values are the account's session.
    print(f"imported {len(cookies)} cookie(s) for {domains} into {target} (mode 0600)")
    return 0


def _numbers(flag: str, text: str, count: int, shape: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise UsageError(f"{flag} must be {shape}, numbers separated by commas (got {text!r})")
    return values


def _area_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """``--all``, ``--bbox``, ``--near``/``--radius-km`` as the job spec's ``coverage`` and ``area``."""
    if args.bbox is not None and args.near is not None:
        raise UsageError("give --bbox or --near, not both")
    if (args.near is None) != (args.radius_km is None):
        raise UsageError("--near and --radius-km go together")
    area: dict[str, Any] | None = None
    if args.bbox is not None:
        area = {"bbox": _numbers("--bbox", args.bbox, 4, "S,W,N,E")}
    elif args.near is not None:
        area = {"center": _numbers("--near", args.near, 2, "LAT,LNG"), "radius_km": args.radius_km}
    if area is None and not args.all:
        return {}
    return {"coverage": "area", "area": area, "max_area_km2": settings.maps.max_area_km2}


def _collect(args: argparse.Namespace) -> int:
    from leadlawk_daemon import collect, control

    if args.command == "demo":
        configure_logging("WARNING", sys.stderr)
        try:
            return asyncio.run(collect.demo(sys.stdout, sys.stderr))
        except control.ControlError as exc:
            raise Failure(str(exc)) from None
    settings = _settings(args)
    configure_logging(settings.logging.level, sys.stderr)
    try:
        spec = control.spec_from_options(
            args.query, location=args.location, limit=args.limit, min_rating=args.min_rating,
            min_reviews=args.min_reviews, website=args.website, pagespeed=not args.no_pagespeed,
            strategies=args.strategy, max_score=args.max_score, max_runtime_s=args.max_runtime, job_id=args.id,
            max_bytes=settings.server.max_body_bytes, **_area_options(args, settings), site=_site_filters(args),
            independent_only=args.independent_only, max_branches=args.max_branches,
            include_addresses=args.include_addresses, priority=args.priority,
        )
        job, rows = asyncio.run(collect.collect(settings, spec, output=args.output, progress=sys.stderr))
    except control.ControlError as exc:
        raise Failure(str(exc)) from None
    collect.summary(job, rows, sys.stdout)
    if args.output:
        sys.stdout.write(f"wrote {len(rows)} lead(s) to {args.output}\n")
    return 0 if job.status == "succeeded" else 1


def _job_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("query", help='what to look for, e.g. "plumbers"')
    command.add_argument("--location", "-l", help='where, e.g. "Omaha, NE"')
    command.add_argument("--limit", type=int, help="businesses to collect (1-500, default 50; 10,000 with an area)")
    command.add_argument("--all", action="store_true", help="area coverage: every business of the location, past 120")
    command.add_argument("--bbox", metavar="S,W,N,E", help="area coverage inside this box (degrees)")
    command.add_argument("--near", metavar="LAT,LNG", help="area coverage around this point (with --radius-km)")
    command.add_argument("--radius-km", type=float, help="the radius around --near, in km")
    command.add_argument("--min-rating", type=float, help="qualify only leads rated at least this")
    command.add_argument("--min-reviews", type=int, help="qualify only leads with at least this many reviews")
    command.add_argument("--website", choices=["any", "required", "none"], help="qualify by website presence")
    command.add_argument("--no-pagespeed", action="store_true", help="skip PageSpeed Insights")
    command.add_argument("--strategy", action="append", choices=["mobile", "desktop"], help="PageSpeed strategy")
    command.add_argument("--max-score", type=int, help="qualify only sites whose mobile performance is at most this")
    command.add_argument("--max-runtime", type=int, help="seconds before the job fails (default 1800)")
    command.add_argument("--id", help="a client key: submitting the same id twice runs the job once")
    command.add_argument("--priority", type=int, help="0-9, default 5: the highest is leased first, then the oldest")
    command.add_argument("--require-email", action="store_true", help="qualify only leads whose site shows an email")
    command.add_argument("--site-status", action="append", choices=list(SiteStatus),
                         help="qualify only leads whose site is this (repeatable)")
    command.add_argument("--built-with", action="append", metavar="TECH",
                         help="qualify only sites built with or running this (repeatable): a site_cms such as "
                              "wordpress, wix, other, handwritten, or any technology slug of site_tech "
                              "(woocommerce, calendly, google-analytics; docs/site-enrichment.md)")
    command.add_argument("--older-than", type=int, metavar="YEAR", help="qualify only sites last updated before YEAR")
    command.add_argument("--no-https", action="store_true", help="qualify only sites without https")
    command.add_argument("--no-viewport", action="store_true", help="qualify only sites without a mobile viewport")
    command.add_argument("--email-deliverable", action="store_true",
                         help="qualify only leads whose site shows an email at a domain that accepts mail")
    command.add_argument("--exclude-free-mail", action="store_true",
                         help="free-mail addresses (gmail.com…) do not count; a lead with only those does not qualify")
    command.add_argument("--independent-only", action="store_true",
                         help="qualify only businesses that are no chain's branch (docs/chains.md)")
    command.add_argument("--max-branches", type=int, metavar="N", help="qualify only companies of at most N branches")
    command.add_argument("--include-addresses", action="store_true",
                         help="keep results that are a street address or a locality as leads (docs/addresses.md)")


def _site_filters(args: argparse.Namespace) -> dict[str, object] | None:
    """The job spec's ``site`` object from the flags (validated with the rest of the spec)."""
    site: dict[str, object] = {}
    if args.require_email:
        site["require_email"] = True
    if args.site_status:
        site["status"] = args.site_status
    if args.built_with:
        site["built_with"] = args.built_with
    if args.older_than is not None:
        site["older_than_year"] = args.older_than
    if args.no_https:
        site["no_https"] = True
    if args.no_viewport:
        site["no_mobile_viewport"] = True
    if args.email_deliverable:
        site["email"] = "deliverable"
    if args.exclude_free_mail:
        site["exclude_free_mail"] = True
    return site or None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadlawk", description="LeadLawk lead-collection daemon")
    parser.add_argument("--config", help="YAML configuration file (default: $LEADLAWK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    run = add("run", _run, "run the daemon")
    run.add_argument("--config", help="YAML configuration file", default=argparse.SUPPRESS)

    config = add("config", _config, "validate or show the configuration")
    config.add_argument("action", choices=["check", "show"])
    config.add_argument("file", nargs="?", help="the file to check (check only)")

    parse = add("parse", _parse, "run the Google Maps parser on saved pages or payloads")
    parse.add_argument("files", nargs="+", metavar="FILE")

    site = add("site", _site, "read websites (saved pages, or URLs through the daemon's client) for contacts and facts")
    site.add_argument("targets", nargs="+", metavar="FILE|URL")

    replica = add("replica", _replica, "run an offline replica of Google Maps, PageSpeed Insights or the websites")
    replica.add_argument("which", choices=["maps", "pagespeed", "sites", "proxy", "inbox", "dns"])
    replica.add_argument("--host", default="127.0.0.1")
    replica.add_argument("--port", type=int, default=0)
    replica.add_argument("--seed", type=int, default=0)
    replica.add_argument("--count", type=int, default=4, help="proxy: how many local proxies (exits)")
    replica.add_argument("--smtp-port", type=int, default=0, help="inbox: its SMTP server's port (0: any free one)")
    replica.add_argument("--secret", default="inbox-replica-secret", help="inbox: the webhook secret it verifies with")

    add("migrate", _migrate, "bring the database schema up to date")

    session = add("maps-session", _maps_session, "give the scraper a signed-in Google session (docs/limited-view.md)")
    session.add_argument("action", choices=["import"])
    session.add_argument("file", help="a Playwright storage state, a cookie extension's JSON export, or cookies.txt")
    session.add_argument("--to", help="where to write it (default: maps.session_file)")

    submit = add("submit", _control, "submit a job (Redis stream, or the local daemon over HTTP)")
    _job_options(submit)
    submit.add_argument("--wait", action="store_true", help="follow the job's progress to its end")
    submit.add_argument("--notify", action="append", metavar="DESTINATION",
                        help="send the job's digest to this configured destination when it ends (docs/deliveries.md)")

    schedule = add("schedule", _schedule, "recurring jobs: add, list, show, pause, resume, remove, run-now")
    schedule_actions = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    schedule_add = schedule_actions.add_parser(
        "add", help="a job fired at cron times (submit's options, and when)",
        description="a job fired at cron times: submit's options, --cron and --tz; --id is the schedule's id",
    )  # fmt: skip
    _job_options(schedule_add)
    schedule_add.add_argument("--cron", required=True, help='5 fields: minute hour day month weekday, e.g. "0 2 * * *"')
    schedule_add.add_argument("--tz", default="UTC", help="the IANA zone the cron times are in, e.g. America/Chicago")
    schedule_add.add_argument("--deliver", action="append", metavar="NAME", help="a destination (repeatable)")
    schedule_add.add_argument(
        "--catch-up",
        choices=["latest", "none"],
        default="latest",
        help="after downtime: fire once for the latest missed time (default), or not at all",
    )
    schedule_add.add_argument(
        "--overlap",
        choices=["skip", "queue"],
        default="skip",
        help="while the previous fire's job runs: skip this time (default), or run it after",
    )
    schedule_add.add_argument("--name", help="a name (default: the query and location)")
    schedule_add.add_argument("--no-deliver-empty", action="store_true", help="no digest when nothing is new")
    schedule_add.add_argument("--paused", action="store_true", help="added paused (resume it to start)")
    schedule_list = schedule_actions.add_parser("list", help="every schedule, its next fire and last five fires")
    schedule_list.add_argument("--json", action="store_true", help="as GET /schedules")
    for action, text in (("show", "one schedule and its last fires, as JSON"), ("pause", "stop firing it"),
                         ("resume", "fire it again, from the next cron time"), ("remove", "delete it (its jobs stay)"),
                         ("run-now", "fire it once now, outside its cron times")):  # fmt: skip
        schedule_actions.add_parser(action, help=text).add_argument("id")

    collect_cmd = add("collect", _collect, "collect one job in-process, start to finish, and write CSV or JSONL")
    _job_options(collect_cmd)
    collect_cmd.add_argument("-o", "--output", help="CSV file, or JSONL or XLSX by its extension")
    add("demo", _collect, "collect a sample job against the offline replicas: no network, no keys")

    jobs = add("jobs", _control, "list jobs")
    jobs.add_argument("--status", help="only jobs with this status")
    status = add("status", _control, "show one job")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the whole job record as JSON (as GET /jobs/ID)")
    cancel = add("cancel", _control, "cancel a job")
    cancel.add_argument("id")

    export = add("export", _control, "export leads with their PageSpeed results")
    export.add_argument("--job", help="only this job's leads, with their rank and verdict")
    export.add_argument("--qualified", action="store_true", help="only qualified leads (with --job)")
    export.add_argument(
        "--format", choices=["csv", "jsonl", "xlsx"], help="default: by the output's extension, else csv"
    )
    export.add_argument("--new-since", metavar="JOB|DATE",
                        help="only businesses first seen after this job started, or this ISO date/datetime (UTC)")
    export.add_argument("--crm", choices=["hubspot", "pipedrive", "salesforce"],
                        help="the CSV that CRM's importer takes: its columns, records and formats (docs/crm-export.md)")
    export.add_argument("-o", "--output", help="file to write (default: stdout)")

    fleet = add("fleet", _fleet, "the daemons sharing this Redis: jobs held, breakers, quota share (as GET /fleet)")
    fleet.add_argument("--json", action="store_true", help="JSON (as GET /fleet) even on a terminal")

    dlq = add("dlq", _control, "dead letters: list, show, replay")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument("id", nargs="?", type=int)
    dlq.add_argument("--all", action="store_true", help="list: include replayed ones; replay: every pending one")
    dlq.add_argument("--kind", choices=["message", "job", "lead", "delivery"], help="list: only this kind")

    deliveries = add("deliveries", _deliveries, "finished jobs' digests to destinations: list, show, replay")
    deliveries.add_argument("action", choices=["list", "show", "replay"])
    deliveries.add_argument("id", nargs="?")
    deliveries.add_argument("--status", help="list: only deliveries with this status (pending, delivered, dead)")
    deliveries.add_argument("--json", action="store_true", help="list: JSON")
    return parser


def _die(status: int, message: str) -> NoReturn:
    sys.stderr.write(f"leadlawk: {message}\n")
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"leadlawk: config: {problem}\n")
        return 2
    except UsageError as exc:
        _die(2, str(exc))
    except Failure as exc:
        _die(1, str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one readable line, not a traceback
        from leadlawk_daemon.logs import redact

        _die(1, redact(f"{type(exc).__name__}: {exc}"))


