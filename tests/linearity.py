"""Is a parser linear in its input? Time it on an input and on the same shape doubled, in one run.

The fuzz suites (``tests/test_fuzz_*.py``) build an input of one shape at size ``n`` and ``2n``
and ask :func:`assert_linear` whether doubling the input at most about doubles the time
(``max_ratio``, 2.5 by default: the issue's bound, room for the machine's noise). A quadratic
parser gives 4x, a backtracking one far more.

Times are CPU time of this process (``time.process_time``), the best of ``repeats`` runs, so a
neighbour on the other core does not count. The input is grown until the smaller size takes at
least ``floor_s``: below a millisecond the ratio is timer noise, not the parser's shape.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["FUZZ_EXAMPLES", "Linearity", "assert_linear", "cpu_time", "examples"]

T = TypeVar("T")

# Hypothesis examples per fuzz test: bounded in ``make check``, many more in ``make fuzz``
# (which sets LEADLAWK_FUZZ_EXAMPLES).
FUZZ_EXAMPLES = int(os.environ.get("LEADLAWK_FUZZ_EXAMPLES", "60"))
# ``make test-fast`` is the quick loop while editing: it runs every property test with a share of
# its examples (LEADLAWK_PROPERTY_SHARE, e.g. 0.25); ``make check`` runs them all.
PROPERTY_SHARE = float(os.environ.get("LEADLAWK_PROPERTY_SHARE", "1"))


def examples(full: int) -> int:
    """A property test's Hypothesis examples: ``full`` in ``make check``, a share in ``make test-fast``."""
    return max(5, round(full * PROPERTY_SHARE))


def cpu_time(work: Callable[[], object], repeats: int = 3) -> float:
    """The least CPU time of ``repeats`` runs of ``work``."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


@dataclass(frozen=True, slots=True)
class Linearity:
    size: int  # the smaller input's size, in units of the shape
    small_s: float
    large_s: float

    @property
    def ratio(self) -> float:
        return self.large_s / max(self.small_s, 1e-9)


def _interleaved(small: Callable[[], object], large: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The least CPU time of each, measured in two rounds of small-then-large: a burst of load
    from a neighbour on a shared machine then slows both sizes alike instead of only the one it
    happened to hit. Each size runs ``repeats`` times in a row within a round, so the first run
    pays the page faults of growing the heap to that size and the least of them does not."""
    best_small = best_large = float("inf")
    for _ in range(2):
        best_small = min(best_small, cpu_time(small, repeats))
        best_large = min(best_large, cpu_time(large, repeats))
    return best_small, best_large


def assert_linear(
    parse: Callable[[T], object],
    make: Callable[[int], T],
    *,
    size: int = 1_000,
    max_size: int = 1_000_000,
    floor_s: float = 0.012,
    max_ratio: float = 2.5,
    repeats: int = 3,
) -> Linearity:
    """Time ``parse(make(n))`` against ``parse(make(2n))``; raise AssertionError past ``max_ratio``.

    ``n`` starts at ``size`` and doubles (up to ``max_size``) until the smaller run takes
    ``floor_s`` of CPU (a few milliseconds are timer and cache noise on a shared machine).
    Returns the measurement so a test can print it.
    """
    n = size
    run_small = functools.partial(parse, make(n))
    small = cpu_time(run_small, repeats)
    while small < floor_s and n * 2 <= max_size:
        n *= 2
        run_small = functools.partial(parse, make(n))
        small = cpu_time(run_small, repeats)
    run_large = functools.partial(parse, make(2 * n))
    small, large = _interleaved(run_small, run_large, repeats)
    found = Linearity(n, small, large)
    if found.ratio > max_ratio:
        # Once more before failing: one sample can land on a garbage collection or a page fault.
        again_small, again_large = _interleaved(run_small, run_large, repeats)
        found = Linearity(n, min(small, again_small), min(large, again_large))
        small, large = found.small_s, found.large_s
    assert found.ratio <= max_ratio, (
        f"not linear: size {n} took {small * 1000:.2f} ms, size {2 * n} took {large * 1000:.2f} ms "
        f"({found.ratio:.2f}x for 2x the input; at most {max_ratio}x allowed)"
    )
    return found
