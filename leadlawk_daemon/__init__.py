"""LeadLawk: unattended, supervised lead collection from Google Maps, enriched with PageSpeed Insights."""

__version__ = "0.1.0"
