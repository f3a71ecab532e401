"""The job pipeline: leased jobs driven through the scraper, enricher and writer actors.

Import :class:`~leadlawk_daemon.jobs.pipeline.Pipeline` from ``leadlawk_daemon.jobs.pipeline``
(this package stays import-free: the actors import its message types).
"""
