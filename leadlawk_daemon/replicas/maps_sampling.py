"""The Maps replica's answer sets returned partially at random, as Google's are run to run.

gosom #295 measured it: of 39 places, only 21 came back in all four of four identical runs. With
the ``partial`` fault (``{"fraction": 0.6, "seed": 7}``) every search navigation is a new run: it
lists a random ``fraction`` of its answer set, shuffled, drawn from ``seed`` and the run's number,
so a test can replay the same sequence of runs. The feed's later pages of that search list the
same run (the last search of the same query and location), as scrolling one results page does.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from leadlawk_daemon.replicas.faults import Fault
from leadlawk_daemon.replicas.maps_business import AnswerSet

__all__ = ["PARTIAL_FAULT", "PartialAnswers", "parse_partial"]


def parse_partial(value: Any) -> tuple[float, int] | None:
    """``{"fraction": f, "seed": n}`` with 0 < f ≤ 1 (``seed`` defaults to 0); ``false``/``null``: off."""
    if value is False or value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"fraction", "seed"}:
        raise ValueError(f'expected {{"fraction": 0.6, "seed": 7}}, got {value!r}')
    fraction, seed = value.get("fraction"), value.get("seed", 0)
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    return float(fraction), seed


PARTIAL_FAULT = Fault(
    "partial", '{"fraction": f, "seed": n}',
    "each search lists a random share of its answer set, shuffled: a new draw per search (a run)", parse_partial,
)  # fmt: skip


class PartialAnswers:
    """The runs drawn so far, and each search's current one."""

    def __init__(self) -> None:
        self.runs = 0
        self._current: dict[tuple[str, str], AnswerSet] = {}

    @staticmethod
    def _key(answer_set: AnswerSet) -> tuple[str, str]:
        return answer_set.query.casefold(), answer_set.location.label.casefold()

    def search(self, setting: tuple[float, int] | None, answer_set: AnswerSet) -> AnswerSet:
        """A search navigation: a new run of ``answer_set`` (unchanged when the fault is off)."""
        if setting is None:
            return answer_set
        fraction, seed = setting
        self.runs += 1
        draw = random.Random(f"{seed}:{self.runs}")
        businesses = list(answer_set.businesses)
        kept = draw.sample(businesses, max(1, round(len(businesses) * fraction))) if businesses else []
        run = dataclasses.replace(answer_set, businesses=tuple(kept))
        self._current[self._key(answer_set)] = run
        return run

    def feed(self, setting: tuple[float, int] | None, answer_set: AnswerSet) -> AnswerSet:
        """A later page of the feed: the search's current run (a new one if it had none)."""
        if setting is None:
            return answer_set
        current = self._current.get(self._key(answer_set))
        return current if current is not None else self.search(setting, answer_set)
