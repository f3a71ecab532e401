"""``leadlawk collect …`` in a process of its own, against a Maps replica of its own and a SQLite
store in the test's folder: the whole daemon path (actors, store, export) as a user runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from leadlawk_daemon.replicas.maps import serve_maps_replica
from tests.daemon_process import ROOT

__all__ = ["collect_with_replica"]


def collect_with_replica(
    args: list[str], store: Path, timeout: float = 150.0, **replica: Any
) -> subprocess.CompletedProcess[str]:
    """``leadlawk ARGS`` (a ``collect``) with the store at ``store`` (SQLite), no Redis, and a Maps
    replica served for it with ``replica``'s settings."""

    async def run() -> subprocess.CompletedProcess[str]:
        async with serve_maps_replica("127.0.0.1", 0, **replica) as maps_url:
            env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
            env |= {
                "DATABASE_URL": f"sqlite:///{store}",
                "PYTHONPATH": str(ROOT),
                "LEADLAWK__MAPS__BASE_URL": maps_url,
                "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "6000",
                "PORT": "0",
                "LEADLAWK__SERVER__HOST": "127.0.0.1",
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "leadlawk_daemon", *args, env=env, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
            return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())

    return asyncio.run(run())
