"""Google's signed-out "limited view" (since February 2026), recognised on a page.

Signed-out visitors in more and more regions get a banner ("You're seeing a limited view of
Google Maps", German "Die Ansicht ist beschränkt und du siehst nur einen Teil der Google
Maps-Daten"), result cards with stars but no review count, and fewer businesses. Names,
addresses, phones and websites remain.

A page is judged by its structure first (a link to Google's help on the limited view, whatever
the language; an alert that offers to sign in) and by the banner's sentence in the languages we
know, never by class names (they change with every Google release). Text inside result cards and
place names is the businesses' own, untrusted: a business named like the banner must not switch
the view, so the results feed and headings are left out of the text search.
"""

from __future__ import annotations

import re
from typing import Literal

from selectolax.lexbor import LexborHTMLParser

__all__ = ["MapsView", "combine_views", "limited_view_in"]

MapsView = Literal["full", "limited", "mixed"]

# The banner's sentence, as Google localises it (lower case, apostrophes straightened).
_BANNER_TEXTS = (
    "limited view of google maps",  # en: "You're seeing a limited view of Google Maps"
    "ansicht ist beschränkt",  # de: "Die Ansicht ist beschränkt und du siehst nur einen Teil …"
    "version limitée de google maps",  # fr
    "vue limitée de google maps",  # fr (variant)
    "vista limitada de google maps",  # es
    "visualizzazione limitata di google maps",  # it
    "visualização limitada do google maps",  # pt
    "beperkte weergave van google maps",  # nl
)
_STRUCTURE = (
    'a[href*="p=limited_view"]',
    '[role="alert"] a[href*="accounts.google.com/ServiceLogin"]',
    '[role="alert"] a[href*="accounts.google.com/signin"]',
)
# Where the businesses' own words are: never read for the banner.
_UNTRUSTED = '[role="feed"], [role="article"], h1, script, style, template, noscript'
_SPACE = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text.replace("\u2019", "'").replace("\u00a0", " ")).casefold()


def limited_view_in(html: str) -> bool:
    """Whether ``html`` (a results page or a place page) is Google's limited view."""
    if not html:
        return False
    tree = LexborHTMLParser(html)
    if any(tree.css_first(selector) is not None for selector in _STRUCTURE):
        return True
    body = tree.body
    if body is None:
        return False
    for node in body.css(_UNTRUSTED):
        node.decompose()
    text = _normal(body.text(separator=" "))
    return any(phrase in text for phrase in _BANNER_TEXTS)


def combine_views(seen: set[str]) -> MapsView | None:
    """A job's view from the views of the pages it read: ``None`` before any page."""
    if not seen:
        return None
    if "mixed" in seen or seen >= {"full", "limited"}:
        return "mixed"
    return "limited" if "limited" in seen else "full"
