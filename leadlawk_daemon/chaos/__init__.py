"""Fault injection for rehearsing failures on loopback: a TCP proxy that cuts, delays or blackholes."""

from leadlawk_daemon.chaos.proxy import FaultProxy, ProxyMode, ProxyStats

__all__ = ["FaultProxy", "ProxyMode", "ProxyStats"]
