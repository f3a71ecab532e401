"""A cap on how deep a page's elements nest, applied to the markup before it is parsed.

An HTML5 tree builder checks "is an element in scope" by walking the stack of open elements, so a
page of 20,000 unclosed ``<div>`` (220 KB) costs Lexbor 0.6 s to parse and 40,000 ``<b><i><u><a>``
over a second: time grows with the square of the depth. Browsers cap the depth for the same reason
(Blink's parser stops nesting at 512). :func:`cap_nesting` reads the markup once, following the
open elements roughly as the tree builder would, and drops each start tag that would open an
element deeper than the cap; the text inside stays, so no address or phone is lost.

The estimate leaves out what the tree builder never keeps open: void elements (``<br>``, ``<img>``),
elements closed by their next sibling (``<p>``, ``<li>``, ``<td>``…), foreign self-closing tags
(``<path/>``), and the insides of comments and raw-text elements (``<script>``, ``<style>``…). A
real page stays far below the cap and is returned unchanged, the same string.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DEPTH", "cap_nesting"]

MAX_DEPTH = 512

# Linear: a literal "<" then bounded name characters at the end of the pattern (never given back).
_TAG = re.compile(r"<(?:(!--)|(/?)([A-Za-z][A-Za-z0-9:-]{0,63}))")
_RAW_TEXT = {
    name: re.compile(rf"</{name}", re.IGNORECASE)
    for name in ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext")
}
_NEVER_OPEN = frozenset({
    # void elements
    "area", "base", "br", "col", "embed", "hr", "img", "image", "input", "keygen", "link", "meta", "param",
    "source", "track", "wbr", "frame", "basefont", "bgsound",
    # closed by the next of their kind, or by their parent's end
    "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "tbody", "thead", "tfoot", "rb", "rt", "rtc",
    "rp", "colgroup", "caption",
    # only ever one of each
    "html", "head", "body",
})
# In HTML a "/>" closes nothing (``<div/>`` opens a div); only in SVG and MathML does it. These are
# the HTML element names, for which "/>" is ignored; any other name ending in "/>" is taken as closed.
_HTML_NAMES = frozenset({
    "a", "abbr", "address", "article", "aside", "audio", "b", "bdi", "bdo", "blockquote", "button", "canvas",
    "center", "cite", "code", "data", "datalist", "del", "details", "dfn", "dialog", "dir", "div", "dl", "em",
    "fieldset", "figcaption", "figure", "font", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hgroup", "i", "ins", "kbd", "label", "legend", "main", "map", "mark", "marquee", "menu", "meter", "nav",
    "nobr", "noscript", "object", "ol", "output", "picture", "pre", "progress", "q", "ruby", "s", "samp",
    "search", "section", "select", "slot", "small", "span", "strike", "strong", "sub", "summary", "sup",
    "table", "template", "time", "tt", "u", "ul", "var", "video",
})


def cap_nesting(html: str, limit: int = MAX_DEPTH) -> str:
    """``html`` without the start tags that would nest elements deeper than ``limit``."""
    if html.count("<") <= limit:
        return html  # fewer tags than the cap: it cannot be reached
    open_names: list[str] = []
    open_count: dict[str, int] = {}  # name → how many are in open_names: an unmatched end tag is O(1)
    kept: list[str] = []
    copied = 0  # html[:copied] is in kept already
    position = 0  # where reading goes on: past the last tag, comment or raw text read
    for match in _TAG.finditer(html):
        if match.start() < position:
            continue  # inside a tag, comment or raw text already read past
        if match.group(1):  # a comment: nothing in it opens anything
            end = html.find("-->", match.end())
            position = len(html) if end < 0 else end + 3
            continue
        closing, name = match.group(2), match.group(3).lower()
        end = html.find(">", match.end())
        if end < 0:
            break
        position = end + 1
        if closing:
            if open_count.get(name):
                while True:  # amortised O(1): each name popped was pushed once
                    top = open_names.pop()
                    open_count[top] -= 1
                    if top == name:
                        break
            continue
        if name in _RAW_TEXT:
            close = _RAW_TEXT[name].search(html, position)
            position = len(html) if close is None else close.start()
            continue
        if name in _NEVER_OPEN or (html[end - 1] == "/" and name not in _HTML_NAMES):
            continue
        if len(open_names) >= limit:
            kept.append(html[copied:match.start()])
            copied = position  # the start tag dropped; what it held stays, one level up
            continue
        open_names.append(name)
        open_count[name] = open_count.get(name, 0) + 1
    if not kept:
        return html
    kept.append(html[copied:])
    return "".join(kept)
