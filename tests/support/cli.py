"""``leadlawk …`` run in this process: :func:`leadlawk_daemon.cli.main` with the test's environment
and its output captured.

The same code path as the installed command, without a Python interpreter started per call (a
second or more each on this machine, most of a unit test's time). Tests of the process itself (a
signal, a terminal, the exit of a daemon) run the real ``python -m leadlawk_daemon``, as
``tests.test_cli_control.cli`` does.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock

from leadlawk_daemon.cli import main

__all__ = ["CliRun", "run_cli"]


@dataclass(frozen=True)
class CliRun:
    """What a shell would see of one command: its exit status and its two streams."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, db: str, extra: dict[str, str] | None = None) -> CliRun:
    """``leadlawk ARGS`` against the store at ``db`` (and no Redis), with ``extra`` in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {"DATABASE_URL": db, **(extra or {})}
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exit_:  # the CLI's _die: a status and one line on stderr
            status = exit_.code if isinstance(exit_.code, int) else 1
    return CliRun(status, out.getvalue(), err.getvalue())
