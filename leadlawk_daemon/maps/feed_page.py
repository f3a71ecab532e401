"""The results feed as it lives in the browser: read what is new, scroll, wait for growth.

Reading only the feed's children not read before (each is marked when read) keeps a 120-card
scroll linear: the parser sees every card once, and a malformed card is counted once. Growth is
awaited in the page (``wait_for_function`` on the number of place links) with a deadline, never
with a fixed sleep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from leadlawk_daemon.maps.browser import BrowserPool

__all__ = ["FeedChunk", "FeedPage"]

_READ_MARK = "data-leadlawk-read"
_FEED = 'div[role="feed"]'
_PLACE_LINKS = 'a[href*="/maps/place/"]'

# The end marker as Google writes it (class name as a fallback), looked for in visible text only.
_ENDED = r"""(feed) => /reached the end of the list/i.test(feed.innerText || "")
  || !!feed.querySelector(".HlvSq")"""

_COLLECT_JS = f"""() => {{
  const feed = document.querySelector({_FEED!r});
  if (!feed) return null;
  const fresh = [];
  for (const child of feed.children) {{
    if (child.hasAttribute({_READ_MARK!r})) continue;
    child.setAttribute({_READ_MARK!r}, "");
    fresh.push(child.outerHTML);
  }}
  const ended = ({_ENDED})(feed);
  return {{html: '<div role="feed">' + fresh.join("") + "</div>",
          links: feed.querySelectorAll({_PLACE_LINKS!r}).length, ended}};
}}"""

_FULL_JS = f"""() => {{
  const feed = document.querySelector({_FEED!r});
  return feed ? feed.outerHTML : "";
}}"""

_LINKS_JS = f"""() => {{
  const feed = document.querySelector({_FEED!r});
  return feed ? feed.querySelectorAll({_PLACE_LINKS!r}).length : 0;
}}"""

# Scroll the feed and every scrollable ancestor: Google scrolls the feed's container, a simpler
# page may scroll the window; the lazy loader listens to whichever moves.
_SCROLL_JS = f"""() => {{
  const feed = document.querySelector({_FEED!r});
  if (!feed) return;
  const last = feed.lastElementChild;
  if (last) last.scrollIntoView({{block: "end"}});
  for (let node = feed; node; node = node.parentElement) {{
    if (node.scrollHeight > node.clientHeight) node.scrollTop = node.scrollHeight;
  }}
  window.scrollTo(0, document.documentElement.scrollHeight);
}}"""

_GROWN_JS = f"""(before) => {{
  const feed = document.querySelector({_FEED!r});
  if (!feed) return true;
  return feed.querySelectorAll({_PLACE_LINKS!r}).length > before || ({_ENDED})(feed);
}}"""

_FIRST_RESULTS_JS = f"""() => {{
  const feed = document.querySelector({_FEED!r});
  return !feed || feed.querySelectorAll({_PLACE_LINKS!r}).length > 0 || ({_ENDED})(feed);
}}"""


@dataclass(frozen=True, slots=True)
class FeedChunk:
    html: str
    links: int
    ended: bool


class FeedPage:
    def __init__(
        self, pool: BrowserPool, page: Page, *, operation_timeout: float, scroll_timeout: float
    ) -> None:
        self._pool = pool
        self._page = page
        self._op = operation_timeout
        self._scroll = scroll_timeout

    async def collect(self) -> FeedChunk:
        raw: Any = await self._pool.bounded(self._page.evaluate(_COLLECT_JS), self._op, "reading the feed")
        if not isinstance(raw, dict):
            return FeedChunk("", 0, False)
        return FeedChunk(str(raw.get("html") or ""), int(raw.get("links") or 0), bool(raw.get("ended")))

    async def full_html(self) -> str:
        raw: Any = await self._pool.bounded(self._page.evaluate(_FULL_JS), self._op, "reading the whole feed")
        return str(raw or "")

    async def link_count(self) -> int:
        raw: Any = await self._pool.bounded(self._page.evaluate(_LINKS_JS), self._op, "counting the results")
        return int(raw or 0)

    async def scroll(self) -> None:
        await self._pool.bounded(self._page.evaluate(_SCROLL_JS), self._op, "scrolling the feed")

    async def wait_for_growth(self, links_before: int) -> bool:
        """True once more place links (or the end marker) show; False after ``scroll_timeout``."""
        return await self._wait(_GROWN_JS, links_before, "waiting for the feed to grow")

    async def wait_for_first_results(self) -> bool:
        return await self._wait(_FIRST_RESULTS_JS, None, "waiting for the first results")

    async def _wait(self, script: str, arg: Any, what: str) -> bool:
        async def wait() -> bool:
            try:
                await self._page.wait_for_function(script, arg=arg, timeout=self._scroll * 1000, polling=50)
            except PlaywrightTimeout:
                return False
            return True

        # Playwright's own timeout ends a quiet feed; ours catches a browser that stopped answering.
        return await self._pool.bounded(wait(), self._scroll + self._op, what)
