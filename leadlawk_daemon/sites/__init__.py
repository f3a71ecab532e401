"""Site enrichment's adapter: read a business's website, report its contacts and the facts that
sell a new one. Knows nothing of jobs (docs/architecture.md: adapters).

The names below are imported on first use (PEP 562): a page-reading worker process
(:mod:`leadlawk_daemon.sites.extract_pool`) imports ``sites.extract`` without the client's HTTP
stack, and starts in 0.1 s instead of 0.5 s.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadlawk_daemon.sites.client import SiteClient, normalize_site_url, report_from_html
    from leadlawk_daemon.sites.egress import EgressGuard, EgressOutage
    from leadlawk_daemon.sites.fetch import ProxyUnreachable
    from leadlawk_daemon.sites.report import CMS_NAMES, SiteReport, SiteStatus

__all__ = [
    "CMS_NAMES",
    "EgressGuard",
    "EgressOutage",
    "ProxyUnreachable",
    "SiteClient",
    "SiteReport",
    "SiteStatus",
    "normalize_site_url",
    "report_from_html",
]

_MODULES = {
    "SiteClient": "client", "normalize_site_url": "client", "report_from_html": "client",
    "EgressGuard": "egress", "EgressOutage": "egress",
    "ProxyUnreachable": "fetch",
    "CMS_NAMES": "report", "SiteReport": "report", "SiteStatus": "report",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value
