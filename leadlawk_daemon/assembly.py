"""Wires the parts into one daemon: the pipeline and the Redis intake under the root supervisor."""

from __future__ import annotations

from leadlawk_daemon.daemon import Daemon
from leadlawk_daemon.settings import Settings

__all__ = ["build_daemon"]


def build_daemon(settings: Settings) -> Daemon:
    return Daemon(settings)
