"""The egress policy for what Chromium itself loads: Google's pages must not reach the daemon's API.

A hostile or spoofed Maps page can ask the browser for anything: a script on ``127.0.0.1:8080``,
a ``fetch`` to the daemon's API, an iframe on ``169.254.169.254``, a redirect to a private host.
Every request the browser makes is judged here by the same rules as the site reader's
(:mod:`leadlawk_daemon.sites.policy`), plus one exemption: the configured Maps origin
(``maps.base_url``'s host and port), which may be a replica on loopback.

Three hooks, because no single one sees everything (docs/egress-policy.md):

* a Playwright route on the context: the first request of every load, in every page, iframe
  (cross-site ones included) and worker;
* a Chrome DevTools ``Fetch`` session per page: Playwright lets every redirect hop through
  unrouted, so the hops are judged there (the page's own loads, its workers' and its iframes':
  site isolation is off in a guarded browser, so that cross-site iframes run in the page's process);
* a WebSocket route, since neither of the above sees a WebSocket handshake.

Service workers are blocked at launch (their requests bypass routing). A popup loads nothing: its
first load starts before a session could be opened on it, so its redirect hops could not be judged.
Names are refused only when they are local (``localhost``, ``*.internal``…): Chromium resolves
public names itself, so a public name that resolves to a private address is not caught here;
Chromium's Local Network Access refuses a public page's loads from a local address instead
(docs/egress-policy.md).

The handlers run on the event loop for every request: they parse the URL once and look nothing up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit
from weakref import WeakKeyDictionary

from playwright.async_api import BrowserContext, Page, Request, Route, WebSocketRoute
from playwright.async_api import Error as PlaywrightError

from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.sites.policy import EgressPolicy, EgressRefused, host_address

__all__ = ["GUARD_LAUNCH_ARGS", "PageGuard", "Refusal"]

log = logging.getLogger(__name__)

# Chromium's flags for a guarded browser. Without site isolation every frame of a page runs in
# the page's own process, so the page's DevTools session sees a cross-site iframe's loads too:
# with it, an out-of-process iframe's redirect hops would pass unjudged. The scraper's browser
# visits Google Maps alone; isolating the sites it embeds from each other is worth less than that.
GUARD_LAUNCH_ARGS: tuple[str, ...] = ("--disable-site-isolation-trials",)

# Loads that never leave the browser.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Refusals are logged at warning once per destination (a hostile page may ask thousands of times); the
# memory of destinations already named is bounded.
_NAMED_HOSTS = 256

Kind = Literal["address", "name", "scheme", "popup"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: ``kind`` labels the metric, ``what`` names host and class."""

    kind: Kind
    what: str


_POPUP = Refusal("popup", "a page the browser pool did not open (a popup)")


def _endpoint(parts: SplitResult) -> tuple[str, int]:
    """Host and port as they are connected to: a literal in its one canonical spelling.

    ValueError: a port that is not a number, or a host that spells no address."""
    scheme = parts.scheme.lower()
    host = unquote(parts.hostname or "")
    address = host_address(host)
    return (str(address) if address is not None else host.rstrip(".")), parts.port or _DEFAULT_PORTS[scheme]


def _kind(host: str) -> Kind:
    try:
        return "name" if host_address(unquote(host)) is None else "address"
    except ValueError:
        return "address"


@dataclass(eq=False)
class PageGuard:
    """Judges each request of a browser context; :meth:`attach` once per context, :meth:`watch`
    each page before it is used. Pages it did not watch (popups) load nothing."""

    maps_url: str
    policy: EgressPolicy = field(default_factory=EgressPolicy)
    metrics: Metrics | None = None
    _origin: tuple[str, int] = field(init=False)
    _named: set[str] = field(init=False, default_factory=set)
    # Each page's session, opening or open; a second caller waits for the first to finish. A page
    # not in here (a popup) loads nothing.
    _watched: WeakKeyDictionary[Page, asyncio.Task[None]] = field(init=False, default_factory=WeakKeyDictionary)

    def __post_init__(self) -> None:
        parts = urlsplit(self.maps_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {self.maps_url[:80]!r}")
        self._origin = _endpoint(parts)

    @classmethod
    def from_settings(
        cls, maps_url: str, allowed_networks: Iterable[IPv4Network | IPv6Network], metrics: Metrics | None = None
    ) -> PageGuard:
        return cls(maps_url, EgressPolicy.from_cidrs(allowed_networks), metrics)

    # -- the decision ---------------------------------------------------------------------------

    def refusal(self, url: str) -> Refusal | None:
        """None when the browser may load ``url``; else why not."""
        scheme = url.partition(":")[0].lower()
        if scheme in _LOCAL_SCHEMES:
            return None
        if scheme not in _DEFAULT_PORTS:
            return Refusal("scheme", f"{scheme[:20]}: (not a web scheme)")
        try:
            parts = urlsplit(url)
            if _endpoint(parts) == self._origin:
                return None
        except ValueError:
            return Refusal("address", f"{url[:80]!r} (not a valid host or port)")
        host = parts.hostname or ""
        try:
            # Chromium (or the exit's proxy) resolves names where we cannot see the answer.
            self.policy.check_host(host, names_resolved_by_proxy=True)
        except EgressRefused as exc:
            return Refusal(_kind(host), exc.what)
        return None

    def _refused(self, refusal: Refusal, resource: str) -> None:
        if self.metrics is not None:
            self.metrics.browser_refused.labels(refusal.kind).inc()
        level = logging.DEBUG
        if refusal.what not in self._named and len(self._named) < _NAMED_HOSTS:
            self._named.add(refusal.what)
            level = logging.WARNING
        log.log(level, "browser request refused by the egress policy",
                extra={"refused": refusal.what, "kind": refusal.kind, "resource": resource})

    # -- the hooks ------------------------------------------------------------------------------

    async def attach(self, context: BrowserContext) -> None:
        """Route every request of ``context`` and watch the pages it has (the pool watches the
        pages it opens later)."""
        await context.route(lambda _url: True, self._route)
        await context.route_web_socket(lambda _url: True, self._route_web_socket)
        for page in context.pages:
            await self.watch(page)

    async def _route(self, route: Route) -> None:
        request = route.request
        refusal = self.refusal(request.url)
        if refusal is None and not self._watching(request):
            refusal = _POPUP
        # A page closed meanwhile leaves nothing to answer.
        with suppress(PlaywrightError):
            if refusal is None:
                await route.continue_()
            else:
                self._refused(refusal, request.resource_type)
                await route.abort("blockedbyclient")

    def _watching(self, request: Request) -> bool:
        """Whether the page making ``request`` has its redirect hops judged. The pool watches each
        page it opens before using it; a page it did not open (a popup) cannot be watched in time
        (a session sees only loads that start after it), so it loads nothing."""
        try:
            page = request.frame.page
        except PlaywrightError:
            # No frame yet: a popup's first navigation, issued before its page exists. A load
            # that is no navigation belongs to a worker, judged with its page.
            return not request.is_navigation_request()
        task = self._watched.get(page)
        # Only a session that is on: one still opening, or that failed, judges nothing yet.
        return task is not None and task.done() and not task.cancelled() and task.exception() is None

    async def _route_web_socket(self, ws: WebSocketRoute) -> None:
        refusal = self.refusal(ws.url)
        if refusal is None:
            ws.connect_to_server()
            return
        self._refused(refusal, "websocket")
        with suppress(PlaywrightError):
            await ws.close(code=1008, reason="refused by the egress policy")

    async def watch(self, page: Page) -> None:
        """Judge the redirect hops of ``page``'s loads (Playwright's route never sees them); returns
        once they are judged."""
        task = self._watched.get(page)
        if task is None:
            task = self._watched[page] = asyncio.get_running_loop().create_task(self._enable(page))
            # A page closed before its session opened fails the task; nobody may be left to read it.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: a caller that gives up waiting must not leave the page half watched.
        await asyncio.shield(task)

    async def _enable(self, page: Page) -> None:
        session = await page.context.new_cdp_session(page)

        async def paused(event: dict[str, Any]) -> None:
            request_id = event["requestId"]
            url = event["request"]["url"]
            refusal = self.refusal(url) if event.get("redirectedRequestId") else None
            with suppress(PlaywrightError):
                if refusal is None:
                    await session.send("Fetch.continueRequest", {"requestId": request_id})
                else:
                    self._refused(refusal, str(event.get("resourceType", "other")).lower())
                    await session.send("Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"})

        session.on("Fetch.requestPaused", paused)
        await session.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})
