"""``leadlawk replica NAME``: each replica's command prints where it listens, serves, and ends cleanly on
SIGTERM (how a bench, a Procfile supervisor or ``kill`` stops it), with exit status 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

# The first line each prints is a URL a user can open (the replica's base or control URL).
REPLICAS = ("maps", "pagespeed", "sites", "proxy", "inbox", "dns")


async def _first_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line, "the replica exited before printing where it listens"
    return line.decode().strip()


async def _serve_and_stop(which: str) -> tuple[str, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leadlawk_daemon",
        "replica",
        which,
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        first = await _first_line(process)
        url = first.removeprefix("control ").split()[0]
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            # Some replicas answer / with 404: what matters is that something answers there.
            assert response.status < 500, f"{which}: {url} answered {response.status}"
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        assert process.stderr is not None
        stderr = (await process.stderr.read()).decode()
        assert "Traceback" not in stderr, f"{which} did not end cleanly:\n{stderr}"
        return url, code
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.timeout(120)
async def test_every_replica_command_prints_its_url_serves_and_ends_on_sigterm() -> None:
    results = await asyncio.gather(*(_serve_and_stop(which) for which in REPLICAS))
    for which, (url, code) in zip(REPLICAS, results, strict=True):
        assert url.startswith("http://127.0.0.1:"), f"{which} printed {url!r}"
        assert code == 0, f"leadlawk replica {which} exited {code} on SIGTERM"
