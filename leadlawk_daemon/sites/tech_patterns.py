"""Wappalyzer-format patterns, vetted and matched in linear time.

The fingerprints are regular expressions written by outside authors for a JavaScript engine, and
they run over pages an attacker writes. Python's ``re`` backtracks: one careless pattern there
(``(?:a+)+b``, or two overlapping ``[^>]+``) is quadratic or worse on a page built for it, and a
thousand patterns cannot each be proved linear by hand as docs/linear-parsing.md does for ours.
So they run on RE2 (``google-re2``), which is linear in the input by construction, as that page
says to do for a pattern that cannot be written linear in ``re``.

Vetting is RE2's compiler: a pattern that needs backtracking (a back-reference, a look-around)
does not compile, and is refused and counted, never run some other way. A :class:`PatternSet`
matches all of its patterns in one pass over the text (RE2's set: one automaton for all of them),
so the cost of the page's HTML is one scan, not one per fingerprint; its memory is bounded
(``MAX_MEM``), and a set that would pass it is refused whole at load, not at a page.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import re2

__all__ = ["MAX_MEM", "LazyPattern", "PatternSet", "Wappalyzed", "compile_one", "parse_pattern", "vet"]

K = TypeVar("K", bound=Hashable)

# RE2's memory for one automaton (its DFA cache), per set: past it RE2 falls back to a slower but
# still linear engine. 64 MiB is far above what the fingerprints' HTML patterns need.
MAX_MEM = 64 << 20


@dataclass(frozen=True, slots=True)
class Wappalyzed:
    """One pattern as the fingerprint writes it: ``regex\\;version:\\1\\;confidence:50``."""

    regex: str
    confidence: int = 100


def parse_pattern(raw: str) -> Wappalyzed:
    """The regex and its confidence (0-100, default 100); the version tag is not used."""
    regex, *tags = raw.split("\\;")
    confidence = 100
    for tag in tags:
        name, _, value = tag.partition(":")
        if name == "confidence" and value.isdigit():
            confidence = min(100, int(value))
    return Wappalyzed(regex, confidence)


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False  # Wappalyzer compiles every pattern with the "i" flag
    options.log_errors = False  # a refused pattern is counted, not printed to stderr
    options.max_mem = MAX_MEM
    options.never_capture = True  # only whether it matches: no submatch bookkeeping
    return options


def compile_one(regex: str) -> Any | None:
    """``regex`` compiled for RE2, or None when RE2 refuses it (it would need backtracking)."""
    try:
        return re2.compile(regex, _options())
    except re2.error:
        return None


def vet(regex: str) -> bool:
    """Whether RE2 accepts ``regex``: parsed only (a set's ``Add``), not compiled, so a thousand
    patterns are vetted at load in a few milliseconds and compiled when first needed."""
    try:
        re2.Set.SearchSet(_options()).Add(regex)
    except re2.error:
        return False
    return True


class LazyPattern:
    """A vetted pattern compiled on its first use: most meta and header names never occur."""

    __slots__ = ("_compiled", "regex")

    def __init__(self, regex: str) -> None:
        self.regex = regex
        self._compiled: Any | None = None

    def search(self, text: str) -> bool:
        if self._compiled is None:
            self._compiled = compile_one(self.regex)
        return self._compiled is not None and self._compiled.search(text) is not None


class PatternSet(Generic[K]):
    """Patterns keyed by what they identify, all matched in one linear pass over a text.

    ``refused`` lists the keys of the patterns RE2 would not compile (each left out, the rest kept).
    """

    def __init__(self, patterns: Iterable[tuple[K, str]]) -> None:
        self.refused: list[tuple[K, str]] = []
        self._keys: list[K] = []
        self._set: Any | None = None  # re2.Set (untyped)
        candidates = [(key, regex) for key, regex in patterns if regex]
        if not candidates:
            return
        built = re2.Set.SearchSet(_options())
        for key, regex in candidates:
            # Adding parses the pattern: one RE2 refuses is left out, and the set stays whole.
            try:
                built.Add(regex)
            except re2.error:
                self.refused.append((key, regex))
                continue
            self._keys.append(key)
        if self._keys:
            built.Compile()
            self._set = built

    def __len__(self) -> int:
        return len(self._keys)

    def matches(self, text: str) -> set[K]:
        """The keys of every pattern found anywhere in ``text``: one scan, linear in its length."""
        if self._set is None or not text:
            return set()
        return {self._keys[index] for index in self._set.Match(text) or ()}  # None: no match
