"""Quotas shared by every daemon on one Redis: PageSpeed's per-100-s and per-day quotas, and the
Google Maps politeness budget (see docs/scaling-out.md)."""

from leadlawk_daemon.quota.daily import SharedDailyQuota
from leadlawk_daemon.quota.link import QuotaLink, quota_id
from leadlawk_daemon.quota.pace import SharedPacer
from leadlawk_daemon.quota.quotas import SharedQuotas, shared_quotas_note

__all__ = ["QuotaLink", "SharedDailyQuota", "SharedPacer", "SharedQuotas", "quota_id", "shared_quotas_note"]
