"""Site extraction in budgeted worker processes: everything done with a page's bytes, off the loop.

A page is untrusted input, and reading it (decoding, parsing, the contact patterns) is CPU work
whose cost the page chooses. In a worker of a :class:`WorkerPool` it costs the event loop only the
pickling of its bytes and of its facts, and a page that is slow for any reason is stopped at
``sites.parse_budget`` of CPU: the site is ``unreadable``, ``too slow``.

Every worker imports this module as it starts, so it imports only what reading a page needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from leadlawk_daemon.sites.decode import decode_body
from leadlawk_daemon.sites.extract import PageFacts, extract_page
from leadlawk_daemon.sites.tech import PageSignals, cms_of, fingerprints

if TYPE_CHECKING:
    from leadlawk_daemon.resilience.worker_pool import WorkerPool

__all__ = ["CLI_BUDGET", "extraction_pool", "header_tech", "page_facts"]

# `leadlawk site FILE` answers within 2 s on any page: its interpreter takes about 0.5 s to start
# and its worker 0.1 s, which leaves this much (CPU, and twice as much of real time) to a page.
CLI_BUDGET = 0.5


def page_facts(
    body: bytes | bytearray,
    content_type: str | None,
    url: str,
    newest_year: int,
    headers: Sequence[tuple[str, str]] = (),
) -> PageFacts:
    """A page's bytes to its facts: what a worker runs (module-level, so it pickles by name)."""
    return extract_page(decode_body(body, content_type), url, newest_year=newest_year, headers=headers)


def header_tech(headers: Sequence[tuple[str, str]], url: str) -> tuple[str, list[str]]:
    """``site_cms`` and ``site_tech`` of a page that is not HTML, from its headers and URL alone."""
    signals = PageSignals(url=url)
    for name, value in headers:
        signals.headers.setdefault(name.lower(), []).append(value)
    found = fingerprints().detect(signals)
    return cms_of(found, None), [t.slug for t in found]


def extraction_pool(workers: int, budget: float, *, wall: float | None = None) -> WorkerPool:
    """The pool that runs :func:`page_facts`, this module imported by each worker as it starts."""
    from leadlawk_daemon.resilience.worker_pool import WorkerPool  # the parent's side: not in workers

    # The fingerprints are compiled as the worker starts (tech_preload), not on its first page's budget.
    preload = (__name__, "leadlawk_daemon.sites.tech_preload")
    return WorkerPool(workers=workers, budget=budget, wall=wall, preload=preload)
