"""One company per chain: leads that share a registrable website domain, or one phone across
different addresses, are one company (``company_id``, ``company_size``). Pure logic, no I/O: the
store persists what :func:`group_companies` decides (docs/chains.md)."""

from __future__ import annotations

from leadlawk_daemon.companies.domains import SHARED_HOSTS, company_domain
from leadlawk_daemon.companies.grouping import Assignment, Grouping, Member, company_id_of, group_companies

__all__ = [
    "SHARED_HOSTS",
    "Assignment",
    "Grouping",
    "Member",
    "company_domain",
    "company_id_of",
    "group_companies",
]
