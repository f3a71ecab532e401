"""Recurring schedules (issue 22, docs/schedules.md): a job spec fired at cron times in an IANA
zone, exactly once per due time across every daemon on one database.

:mod:`.cron` reads the expression, :mod:`.schedule` the definition and the stored records,
:mod:`.plan` decides what a due schedule does, :mod:`.fire` writes one fire through the daemon's
admission, :mod:`.firing` is the loop every daemon runs, :mod:`.book` the management operations
behind the CLI, HTTP and the console, :mod:`.clock` the schedule clock. Nothing is imported here,
so loading one module loads no other.
"""
