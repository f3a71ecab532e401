"""How a piece of work ended, as plain data: what an adapter returns and a job's owner reads.

Vocabulary, so that ``messages.py`` (and the job state) can name an outcome without importing
the adapter that produces it: the Maps scraper is a Playwright module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EndReason", "ScrapeOutcome"]

EndReason = Literal["limit", "end_of_list", "stopped_growing", "single_place"]


@dataclass(frozen=True, slots=True)
class ScrapeOutcome:
    """How a search ended. ``found`` counts distinct businesses read (at most the limit), including
    ``skipped`` ones emitted before a restart; ``feed_exhausted`` says the search has no more."""

    found: int
    emitted: int
    skipped: int
    malformed: int
    details_fetched: int
    scrolls: int
    end_reason: EndReason
    feed_exhausted: bool
    seconds: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict, repr=False)
    # Results that were a street address or a locality, not a business (kind "address"): kept
    # out of the leads, counted here (the job's progress shows them as addresses_skipped).
    addresses: int = 0
