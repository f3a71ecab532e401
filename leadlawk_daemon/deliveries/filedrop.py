"""The ``file`` destination: the digest's leads written atomically into a directory.

A sync tool or a cron picking files up must never read half a file: the digest is written to a
temporary file in the same directory (the same file system), flushed to disk, then renamed over
its final name in one step (``os.replace``), and the directory is synced so the rename survives a
crash. Its name is the delivery's id, so a delivery sent again replaces its own file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from leadlawk_daemon.deliveries.digest import Digest, file_bytes
from leadlawk_daemon.deliveries.errors import DeliveryRejected, DestinationDown
from leadlawk_daemon.settings import FileDestination

__all__ = ["FileSender", "write_atomically"]


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """``data`` as ``directory/name``, never seen partly written. Blocking: call it in a thread."""
    handle, temp = tempfile.mkstemp(prefix=".leadlawk-", suffix=".part", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        target = directory / name
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened to sync it
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return target


class FileSender:
    def __init__(self, name: str, config: FileDestination) -> None:
        self.name = name
        self.config = config

    async def aclose(self) -> None:
        return None

    def _write(self, digest: Digest) -> Path:
        directory = Path(self.config.directory)
        if not directory.is_dir():
            raise DeliveryRejected(f"{directory} is not a directory")
        fmt = self.config.format
        return write_atomically(directory, f"leads-{digest.delivery.id}.{fmt}", file_bytes(digest.rows, fmt))

    async def send(self, digest: Digest) -> None:
        try:
            await asyncio.to_thread(self._write, digest)
        except PermissionError as exc:
            raise DeliveryRejected(f"cannot write there: {exc.strerror}") from None
        except OSError as exc:  # a full disk, a network mount gone: it may come back
            raise DestinationDown(f"{type(exc).__name__}: {exc.strerror or exc}") from None
