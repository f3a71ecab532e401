"""robots.txt as RFC 9309 reads it: groups by user agent, longest match wins, ``*`` and ``$``.

The standard library's ``urllib.robotparser`` matches plain prefixes only (no ``*``/``$``) and
takes the first matching rule rather than the longest, so ``Allow: /contact`` under
``Disallow: /`` would be ignored; this reader does what Google and the RFC do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = ["RobotsRules", "parse_robots"]

_MAX_LINES = 20_000


@dataclass(slots=True)
class RobotsRules:
    rules: list[tuple[bool, str, re.Pattern[str]]] = field(default_factory=list)  # (allow, path, pattern)
    disallow_all: bool = False  # the server could not answer (5xx): RFC 9309 says crawl nothing

    @classmethod
    def allow_everything(cls) -> RobotsRules:
        return cls()

    @classmethod
    def forbid_everything(cls) -> RobotsRules:
        return cls(disallow_all=True)

    def allows(self, url: str) -> bool:
        if self.disallow_all:
            return False
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        path = unquote(parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        best: tuple[int, bool] | None = None
        for allow, rule_path, pattern in self.rules:
            if pattern.match(path):
                length = len(rule_path)
                if best is None or length > best[0] or (length == best[0] and allow):
                    best = (length, allow)
        return True if best is None else best[1]


def _pattern(path: str) -> re.Pattern[str]:
    anchored = path.endswith("$")
    body = path[:-1] if anchored else path
    regex = ".*".join(re.escape(part) for part in unquote(body).split("*"))
    return re.compile(regex + ("$" if anchored else ""))


def parse_robots(text: str, product: str) -> RobotsRules:
    """The rules for ``product`` (our crawler's name): its own group if one names it, else ``*``."""
    groups: list[tuple[list[str], list[tuple[bool, str]]]] = []
    agents: list[str] = []
    rules: list[tuple[bool, str]] = []
    in_rules = False
    for raw in text.splitlines()[:_MAX_LINES]:
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "user-agent":
            if in_rules:
                groups.append((agents, rules))
                agents, rules, in_rules = [], [], False
            agents.append(value.lower())
        elif name in ("allow", "disallow") and agents:
            in_rules = True
            if value:  # an empty Disallow allows everything: no rule
                rules.append((name == "allow", value))
    if agents:
        groups.append((agents, rules))
    token = product.lower()
    chosen: list[tuple[bool, str]] = []
    named = [r for a, r in groups if token in a]
    if named:
        chosen = [rule for group in named for rule in group]
    else:
        chosen = [rule for a, r in groups if "*" in a for rule in r]
    return RobotsRules(rules=[(allow, path, _pattern(path)) for allow, path in chosen])
