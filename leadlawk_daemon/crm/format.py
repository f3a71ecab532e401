"""What a CRM import file is: its columns, what one row stands for, and how a row is made."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from leadlawk_daemon.crm.values import Row

__all__ = ["CrmFormat", "Record"]

Record = dict[str, str | None]


@dataclass(frozen=True, slots=True)
class CrmFormat:
    name: str
    per: Literal["company", "location"]
    """One row per company (the CRM keeps one record per organisation: a chain is one) or per
    location (each branch is a record of its own, to call)."""
    columns: tuple[str, ...]
    """The CRM's own field names, as its importer maps them by header."""
    required: tuple[str, ...]
    """The columns its importer needs a value in, or it skips the row."""
    record: Callable[[Sequence[Row]], Record]
    """A row of the file from the export rows it stands for (a company's, or one location's)."""
    importer: str
    """Which importer, as of when, the mapping was written against (docs/crm-export.md)."""
