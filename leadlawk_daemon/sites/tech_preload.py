"""Imported by each extraction worker as it starts: compiles the technology fingerprints (about
0.2 s of CPU) before the worker says it is ready, so no page's budget pays for it."""

from leadlawk_daemon.sites.tech import fingerprints

fingerprints()
