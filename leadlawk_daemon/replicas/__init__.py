"""Offline stand-ins for Google Maps and PageSpeed Insights, for tests and the demo."""
