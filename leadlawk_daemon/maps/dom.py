"""A small tolerant element tree over the standard library's tokenizer.

Saved Google pages are fragments with stray end tags and cards pasted at different depths, so the
builder never rejects input: an end tag with no open element is ignored, one that closes an outer
element closes everything inside it, and a tokenizer failure keeps what was built so far.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser

__all__ = ["Document", "Element", "parse_html"]

# Elements that never hold children, so their start tag must not be pushed on the open stack.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track"}
    | {"wbr"}
)
# Text the user never sees: kept out of visible text.
_INVISIBLE = frozenset({"script", "style", "template", "noscript"})
_SPACE = re.compile(r"[\s\u00a0\u202f\u2009]+")


def squash(text: str) -> str:
    """Whitespace runs (including non-breaking spaces) as one space, trimmed."""
    return _SPACE.sub(" ", text).strip()


class Element:
    """One element: its tag, attributes, children (elements and text) and its place in document order."""

    __slots__ = ("attrs", "children", "end", "index", "parent", "tag")

    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None, index: int) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Element | str] = []
        self.index = index
        # Index of the last element inside this one (itself when empty); set when the tree is complete.
        self.end = index

    def get(self, name: str) -> str | None:
        return self.attrs.get(name)

    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    @property
    def hidden(self) -> bool:
        return self.attrs.get("aria-hidden") == "true" or self.tag in _INVISIBLE

    def elements(self) -> Iterator[Element]:
        """This element's child elements."""
        for child in self.children:
            if isinstance(child, Element):
                yield child

    def own_text(self) -> str:
        """The text directly inside this element, not in its child elements."""
        return squash(" ".join(c for c in self.children if isinstance(c, str)))

    def visible_text(self) -> str:
        """What a reader sees: text of this subtree without aria-hidden parts, scripts or styles."""
        parts: list[str] = []
        self._collect(parts)
        return squash(" ".join(parts))

    def _collect(self, parts: list[str]) -> None:
        if self.hidden:
            return
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            else:
                child._collect(parts)

    def contains(self, other: Element) -> bool:
        return self.index <= other.index <= self.end

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs!r}>"


class Document:
    """The tree plus every element in document order (``elements[e.index] is e``)."""

    def __init__(self, root: Element, elements: list[Element]) -> None:
        self.root = root
        self.elements = elements

    def within(self, scope: Element) -> list[Element]:
        """Every element inside ``scope``, in document order, ``scope`` excluded."""
        return self.elements[scope.index + 1 : scope.end + 1]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None, 0)
        self.elements: list[Element] = [self.root]
        self.stack: list[Element] = [self.root]
        # How many elements of each tag are open: an end tag nothing open matches costs nothing,
        # instead of a walk down the whole stack (quadratic on a page of stray end tags).
        self.open_tags: dict[str, int] = {}

    def _open(self, tag: str, attrs: list[tuple[str, str | None]]) -> Element:
        parent = self.stack[-1]
        element = Element(tag, {k: (v or "") for k, v in attrs}, parent, len(self.elements))
        self.elements.append(element)
        parent.children.append(element)
        return element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = self._open(tag, attrs)
        if tag not in _VOID:
            self.stack.append(element)
            self.open_tags[tag] = self.open_tags.get(tag, 0) + 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags.get(tag):
            return
        # Every element walked past is closed here, so the walks add up to the elements opened.
        while (closed := self.stack.pop()).tag != tag:
            self.open_tags[closed.tag] -= 1
        self.open_tags[tag] -= 1

    def close(self) -> None:
        # What feed() left over begins with a tag, comment or declaration whose end (">", "-->") is
        # nowhere in the rest of the page: as in HTML5, it runs to the end of the file and is dropped.
        # The standard library (before CPython 3.12.11/3.13.4, gh-135462) reads it as text to the next
        # ">" instead and retries one character on, rescanning the rest of the page from every "<".
        if self.rawdata.startswith("<"):
            self.rawdata = ""
        super().close()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(html: str) -> Document:
    """The element tree of ``html``, whatever its state."""
    builder = _Builder()
    # A tokenizer failure on hostile markup keeps the tree built so far.
    with contextlib.suppress(Exception):
        builder.feed(html)
        builder.close()
    elements = builder.elements
    # Subtree ends in one reverse pass: every element ends where its last descendant does.
    for element in reversed(elements):
        parent = element.parent
        if parent is not None and element.end > parent.end:
            parent.end = element.end
    return Document(builder.root, elements)
