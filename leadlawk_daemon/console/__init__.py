"""The operator console at ``GET /``: server-rendered pages, live job progress by server-sent events."""

from leadlawk_daemon.console.routes import CSP, mount_console

__all__ = ["CSP", "mount_console"]
