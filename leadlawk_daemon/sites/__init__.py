"""Site enrichment's adapter: read a business's website, report its contacts and the facts that
sell a new one. Knows nothing of jobs (docs/architecture.md: adapters)."""

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
