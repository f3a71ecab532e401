"""A real ``leadlawk run`` (or any daemon entry point) in a subprocess, driven like an operator would."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# A daemon's port is chosen here and bound later by the daemon, in another process. A port the kernel
# handed out (bind to 0) can be handed out again in between, to another worker's server or to any
# outgoing connection: under four workers that race was seen (EADDRINUSE at start). So each xdist
# worker takes its ports from a block of its own, below the kernel's ephemeral range, where nothing
# is handed out unasked; the bind check below only skips a port something still holds.
_PORT_BLOCK = 500
_FIRST_PORT = 20000
_next_port = itertools.count(os.getpid() % _PORT_BLOCK)


def _worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0


def free_port() -> int:
    """A loopback port nothing listens on, from this worker's own block."""
    base = _FIRST_PORT + _worker_number() * _PORT_BLOCK
    if base + _PORT_BLOCK > _ephemeral_low():
        base = _FIRST_PORT  # an unusual ephemeral range: the bind check alone guards
    for _ in range(_PORT_BLOCK):
        port = base + next(_next_port) % _PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + _PORT_BLOCK - 1}")


class DaemonProcess:
    def __init__(
        self,
        tmp: Path,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] | None = None,
        name: str = "daemon",
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}-{self.port}.log"
        self.argv = list(argv or [sys.executable, "-m", "leadlawk_daemon", "run"])
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "DATABASE_URL": f"sqlite:///{tmp / (name + '.db')}",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if hasattr(self, "_log"):
            self._log.close()

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, within: float) -> int:
        """The exit status, or an AssertionError if the process is still running after ``within`` s."""
        proc = self.proc
        assert proc is not None
        await eventually(lambda: proc.poll() is not None, within,
                         lambda: f"the daemon's exit (log:\n{self.log_text()[-3000:]})", every=0.02)
        return proc.returncode

    async def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:  # noqa: ASYNC109
        async with aiohttp.ClientSession() as http, http.get(
            self.base + path, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            body = await response.read()
            try:
                return response.status, orjson.loads(body)
            except orjson.JSONDecodeError:
                return response.status, body.decode(errors="replace")

    async def post(self, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:  # noqa: ASYNC109
        data = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else b""
        async with aiohttp.ClientSession() as http, http.post(
            self.base + path, data=data, timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Content-Type": "application/json"},  # as the CLI sends it: the API takes JSON only
        ) as response:
            raw = await response.read()
            try:
                return response.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return response.status, raw.decode(errors="replace")

    async def wait_status(self, path: str, status: int = 200, within: float = 20.0) -> Any:
        """Poll ``path`` until it answers ``status``; its body. Fails with the last answer and the log."""
        last: object = None

        async def answered() -> tuple[Any] | None:
            nonlocal last
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}; log:\n{self.log_text()[-3000:]}")
            try:
                code, body = await self.get(path, timeout=2)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
                return None
            last = (code, body)
            return (body,) if code == status else None  # a 1-tuple: an empty body is an answer too

        found = await eventually(answered, within, lambda: f"{path} answering {status} (last: {last}); log:\n"
                                 f"{self.log_text()[-3000:]}", every=0.05)
        return found[0]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_text().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                lines.append(entry)
        return lines

    async def wait_log(self, predicate: Any, within: float = 20.0) -> dict[str, Any]:
        def matching() -> dict[str, Any] | None:
            return next((entry for entry in self.log_lines() if predicate(entry)), None)

        return await eventually(matching, within, lambda: f"a matching log line (log:\n{self.log_text()[-3000:]})",
                                every=0.05)
