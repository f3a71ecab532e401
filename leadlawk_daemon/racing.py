"""Racing work against a signal, as the product imports it: the rule is the runtime's
(``actors/racing.py``), which the actor cell and the supervisors use too."""

from __future__ import annotations

from actors.racing import STOPPED, Stopped, first_of, reap, unless_set

__all__ = ["STOPPED", "Stopped", "first_of", "reap", "unless_set"]
