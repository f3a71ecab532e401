"""Run the real ``leadlawk`` as a subprocess whose stdin, stdout and stderr are a pseudo-terminal:
what a person at a terminal sees (TTY rendering is decided by ``isatty``, so a pipe cannot show it)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.daemon_process import ROOT

__all__ = ["PtyProcess", "cli_env"]


def cli_env(db: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run against ``db``: no Redis, a colour terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "NO_COLOR", "LOG_FORMAT")}
    return env | {"DATABASE_URL": db, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(extra or {})}


class PtyProcess:
    """``python -m leadlawk_daemon ARGS`` on a 120x40 pseudo-terminal; ``output`` is all it wrote."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        self._master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leadlawk_daemon", *args],
            stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd or ROOT, start_new_session=True,
        )
        os.close(slave)
        self._raw = bytearray()
        self._eof = False

    @property
    def output(self) -> str:
        """Everything written so far, with the terminal's CR LF line ends as plain LF."""
        return self._raw.decode("utf-8", "replace").replace("\r\n", "\n")

    def _read(self, deadline: float) -> None:
        ready, _, _ = select.select([self._master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        try:
            chunk = os.read(self._master, 65_536)
        except OSError:  # EIO: every writer closed the terminal
            chunk = b""
        if chunk:
            self._raw.extend(chunk)
        else:
            self._eof = True

    def read_until(self, pattern: str, within: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + within
        while True:
            found = re.search(pattern, self.output, re.MULTILINE)
            if found:
                return found
            if self._eof or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not appear within {within:g}s; output:\n{self.output}")
            self._read(deadline)

    def wait(self, within: float = 90.0) -> int:
        """Read to the end of its output; its exit status."""
        deadline = time.monotonic() + within
        while not self._eof and time.monotonic() < deadline:
            self._read(deadline)
        return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._master)
