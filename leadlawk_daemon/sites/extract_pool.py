"""Site extraction in budgeted worker processes: everything done with a page's bytes, off the loop.

A page is untrusted input, and reading it (decoding, parsing, the contact patterns) is CPU work
whose cost the page chooses. In a worker of a :class:`WorkerPool` it costs the event loop only the
pickling of its bytes and of its facts, and a page that is slow for any reason is stopped at
``sites.parse_budget`` of CPU: the site is ``unreadable``, ``too slow``.

Every worker imports this module as it starts, so it imports only what reading a page needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadlawk_daemon.sites.decode import decode_body
from leadlawk_daemon.sites.extract import PageFacts, extract_page

if TYPE_CHECKING:
    from leadlawk_daemon.resilience.worker_pool import WorkerPool

__all__ = ["CLI_BUDGET", "extraction_pool", "page_facts"]

# `leadlawk site FILE` answers within 2 s on any page: its interpreter takes about 0.5 s to start
# and its worker 0.1 s, which leaves this much (CPU, and twice as much of real time) to a page.
CLI_BUDGET = 0.5


def page_facts(body: bytes | bytearray, content_type: str | None, url: str, newest_year: int) -> PageFacts:
    """A page's bytes to its facts: what a worker runs (module-level, so it pickles by name)."""
    return extract_page(decode_body(body, content_type), url, newest_year=newest_year)


def extraction_pool(workers: int, budget: float, *, wall: float | None = None) -> WorkerPool:
    """The pool that runs :func:`page_facts`, this module imported by each worker as it starts."""
    from leadlawk_daemon.resilience.worker_pool import WorkerPool  # the parent's side: not in workers

    return WorkerPool(workers=workers, budget=budget, wall=wall, preload=(__name__,))
