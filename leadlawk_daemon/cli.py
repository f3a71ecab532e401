"""``leadlawk``: the command line (INTERFACES.md "CLI").

Exit status: 0 success, 1 failure at run time, 2 bad usage or bad configuration. Errors are one
readable line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import orjson
import yaml

from leadlawk_daemon.logs import configure_logging, register_secret
from leadlawk_daemon.settings import ConfigError, Settings, load_settings, masked

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
    else:
        from leadlawk_daemon.replicas.pagespeed import run_pagespeed_replica

        coro = run_pagespeed_replica(args.host, args.port, args.seed)
    try:
        uvloop.run(coro)
    except KeyboardInterrupt:
        pass
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from leadlawk_daemon.store import open_store_from_settings

    settings = _settings(args)

    async def migrate() -> list[int]:
        async with open_store_from_settings(settings.database) as store:
            return await store.migrate()

    applied = asyncio.run(migrate())
    print(f"schema up to date ({len(applied)} migration(s) applied now)")
    return 0


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

    replica = add("replica", _replica, "run an offline replica of Google Maps or PageSpeed Insights")
    replica.add_argument("which", choices=["maps", "pagespeed"])
    replica.add_argument("--host", default="127.0.0.1")
    replica.add_argument("--port", type=int, default=0)
    replica.add_argument("--seed", type=int, default=0)

    add("migrate", _migrate, "bring the database schema up to date")
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


def _dump(obj: Any) -> str:
    return orjson.dumps(obj).decode()
