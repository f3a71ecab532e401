"""The job pipeline: leased jobs driven through the scraper, enricher and writer actors."""

from leadlawk_daemon.jobs.pipeline import Pipeline, QueueFull
from leadlawk_daemon.jobs.run import JobRun

__all__ = ["JobRun", "Pipeline", "QueueFull"]
