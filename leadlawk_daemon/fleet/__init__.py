"""The daemons sharing one Redis: each registers itself, and any of them lists the others."""

from leadlawk_daemon.fleet.registry import FleetRegistry, FleetUnavailable, Identity, fleet_key, read_members

__all__ = ["FleetRegistry", "FleetUnavailable", "Identity", "fleet_key", "read_members"]
