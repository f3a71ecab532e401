"""What a Markdown page offers to a link (its heading anchors) and what it links to, as GitHub reads it.

Code, fenced or inline, is neither: a ``# comment`` in a shell block is no heading, and a
``[x](y)`` inside backticks is no link."""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["anchors", "headings", "links", "prose"]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`\n]*`+")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r'<a (?:id|name)="([^"]+)"')
# [text](target) and ![alt](target), with an optional "title"; the text holds no bracket.
_LINK = re.compile(r'!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')


def prose(markdown: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def headings(markdown: str) -> list[str]:
    """Every heading's text, in order."""
    return [heading.group(1) for line in prose(markdown) if (heading := _HEADING.match(line))]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors (lower case, punctuation dropped, spaces to hyphens; a repeated
    heading gets ``-1``, ``-2``…), and any ``<a id>``/``<a name>``."""
    seen: Counter[str] = Counter()
    found = set(_HTML_ANCHOR.findall(markdown))
    for heading in headings(markdown):
        slug = re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def links(markdown: str) -> list[str]:
    """Every link and image target in the page's prose, in order."""
    return [target for line in prose(markdown) for target in _LINK.findall(_INLINE_CODE.sub("", line))]
