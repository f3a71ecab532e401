"""Jobs: the coordinator that leases them, the driver of one, and its state.

The pipeline that wires them to the actors is :mod:`leadlawk_daemon.pipeline`, part of the
composition root (this package stays import-free: the actors import its message types).
"""
