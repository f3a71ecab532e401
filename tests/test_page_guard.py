"""Chromium's own loads under the egress policy: a hostile "Maps" page reaches no local service.

The page (served on 127.0.0.1, the Maps origin) asks for a script, an image, a POST, iframes, a
worker's requests, a WebSocket and redirects, all aimed at recorders on other loopback
addresses, and at the cloud metadata address. Guarded, no recorder sees a request while the
page's own loads from its origin go through. The same page without the guard reaches every
recorder: what the guarded run asserts can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_network

import pytest
from aiohttp import web
from playwright.async_api import ProxySettings

from leadlawk_daemon.maps.browser import BrowserPool, PageError
from leadlawk_daemon.maps.page_guard import PageGuard
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.replicas.proxy import ProxyFleet
from leadlawk_daemon.settings import BrowserSettings

ORIGIN = "http://127.0.0.1:9000"


def _guard(**kw: object) -> PageGuard:
    return PageGuard(ORIGIN, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api/jobs",  # the daemon's API: the Maps host, another port
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://127.0.0.1.:8080/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/",
        "http://192.168.1.1/admin",
        "http://[fd00:ec2::254]/",
        "http://localhost:8080/",
        "http://metadata.google.internal/",
        "http://printer.local/",
        "http://intranet/",
        "ws://127.0.0.1:8080/events",
        "wss://10.1.2.3/",
        "http://256.1.1.1/",
        "http://127.0.0.1:notaport/",
        "file:///etc/passwd",
        "ftp://ftp.example.com/",
        "chrome://settings/",
    ],
)
def test_a_local_or_odd_destination_is_refused(url: str) -> None:
    assert _guard().refusal(url) is not None, url


@pytest.mark.parametrize(
    "url",
    [
        "https://www.google.com/maps/search/bakers",
        "https://maps.gstatic.com/x.js",
        "http://8.8.8.8/",
        "https://[2001:4860:4860::8888]/",
        "http://127.0.0.1:9000/maps/search/x",  # the Maps origin itself, a replica on loopback
        "ws://127.0.0.1:9000/live",
        "data:text/html,<p>x</p>",
        "blob:https://www.google.com/5f0e",
        "about:blank",
        "about:srcdoc",
    ],
)
def test_public_hosts_the_maps_origin_and_browser_local_urls_pass(url: str) -> None:
    assert _guard().refusal(url) is None, url


def test_refusals_are_classed_for_the_metric() -> None:
    guard = _guard()
    kinds = {
        url: refusal.kind
        for url in ("http://2130706433/", "http://localhost/", "file:///etc/passwd")
        if (refusal := guard.refusal(url)) is not None
    }
    assert kinds == {"http://2130706433/": "address", "http://localhost/": "name", "file:///etc/passwd": "scheme"}
    refusal = guard.refusal("http://169.254.169.254/")
    assert refusal is not None
    assert "cloud metadata" in refusal.what


def test_the_origin_is_compared_in_its_canonical_spelling() -> None:
    # Chromium asks for 127.0.0.1 whatever spelling maps.base_url used, and omits a default port.
    assert PageGuard("http://0x7f.1:9000/").refusal("http://127.0.0.1:9000/x") is None
    assert PageGuard("https://www.google.com").refusal("https://www.google.com:443/maps") is None
    assert PageGuard("https://www.google.com").refusal("http://www.google.com:8443/") is None  # public


def test_allowed_networks_exempt_what_the_operator_chose() -> None:
    guard = PageGuard.from_settings(ORIGIN, [ip_network("10.0.0.0/8")])
    assert guard.refusal("http://10.1.2.3/") is None
    assert guard.refusal("http://192.168.1.1/") is not None


def test_a_maps_url_that_is_not_http_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not an http"):
        PageGuard("file:///tmp/maps")


# -- against a real Chromium ------------------------------------------------------------------

RECORDERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")


@dataclass
class Hostile:
    """The "Maps" origin with its hostile page, and the recorders it aims at."""

    origin: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    own: list[str] = field(default_factory=list)  # paths the origin served
    hits: list[str] = field(default_factory=list)  # requests any recorder saw
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def at(self, host: str, path: str) -> str:
        return f"http://{host}:{self.ports[host]}{path}"

    def page(self, metadata: bool) -> str:
        at = self.at
        # The metadata address is only asked for guarded: unguarded, it would hang until a timeout.
        meta = "frame('http://169.254.169.254/latest/meta-data/')," if metadata else ""
        return f"""<!doctype html><html><body>
<img src="{at('127.0.0.2', '/image')}">
<script src="/own.js"></script>
<script src="{at('127.0.0.2', '/script.js')}"></script>
<script>
const frame = (src) => new Promise((done) => {{
  const f = document.createElement('iframe'); f.onload = done; f.onerror = done; f.src = src;
  document.body.appendChild(f);
}});
const worker = new Promise((done) => {{
  const w = new Worker('/worker.js'); w.onmessage = done; w.onerror = done;
}});
const socket = new Promise((done) => {{
  const s = new WebSocket('ws://127.0.0.6:{self.ports['127.0.0.6']}/socket');
  s.onopen = done; s.onerror = done; s.onclose = done;
  // Playwright's WebSocket mock, closed by the guard, does not always fire "close": its state tells.
  const closed = setInterval(() => {{ if (s.readyState === 3) {{ clearInterval(closed); done(); }} }}, 20);
}});
Promise.allSettled([
  fetch('/own-data').then((r) => r.text()).then((t) => {{ document.body.dataset.own = t; }}),
  fetch('{at('127.0.0.3', '/api')}', {{method: 'POST', body: 'stop', mode: 'no-cors'}}),
  fetch('/redirect?to={at('127.0.0.4', '/fetched')}', {{mode: 'no-cors'}}),
  frame('/redirect?to={at('127.0.0.4', '/framed')}'),
  {meta}
  worker, socket,
]).then(() => fetch('/done'));
window.open('/popup-redirect?to={at('127.0.0.4', '/popup')}');
</script></body></html>"""

    def worker(self) -> str:
        return (
            f"Promise.allSettled([fetch('{self.at('127.0.0.5', '/worker')}', {{mode: 'no-cors'}}),"
            f" fetch('/redirect?to={self.at('127.0.0.5', '/worker-redirected')}', {{mode: 'no-cors'}})])"
            ".then(() => postMessage('done'));"
        )


@contextlib.asynccontextmanager
async def _served(app: web.Application, host: str) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _hostile(metadata: bool) -> AsyncIterator[Hostile]:
    hostile = Hostile()

    def recorder(host: str) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            hostile.hits.append(host + request.path)
            return web.Response(text="recorded")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app

    def origin_app() -> web.Application:
        async def serve(request: web.Request) -> web.StreamResponse:
            path = request.path
            hostile.own.append(path)
            if path == "/":
                return web.Response(text=hostile.page(metadata), content_type="text/html")
            if path == "/own.js":
                return web.Response(text="document.body.dataset.script = 'ran';", content_type="text/javascript")
            if path == "/worker.js":
                return web.Response(text=hostile.worker(), content_type="text/javascript")
            if path in ("/redirect", "/popup-redirect"):
                raise web.HTTPFound(request.query["to"])
            if path == "/done":
                hostile.done.set()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", serve)
        return app

    async with contextlib.AsyncExitStack() as stack:
        for host in RECORDERS:
            hostile.ports[host] = await stack.enter_async_context(_served(recorder(host), host))
        port = await stack.enter_async_context(_served(origin_app(), "127.0.0.1"))
        hostile.origin = f"http://127.0.0.1:{port}"
        yield hostile


def _settings() -> BrowserSettings:
    return BrowserSettings.model_validate({
        "executable": None, "headless": True, "pages": 1, "page_recycle_after": 25,
        "browser_recycle_after": 200, "memory_limit_mb": 4096, "launch_timeout": 30.0,
    })


async def _visit(pool: BrowserPool, hostile: Hostile) -> tuple[str | None, str | None, str | None]:
    """Load the hostile page, wait for it to report every load settled, then follow a redirect
    to a recorder as a navigation (and as a popup the page opens); the page's own marks and the
    navigation's error."""
    async with pool.page() as page:
        async with page.expect_popup(timeout=20_000) as opened:
            await pool.bounded(page.goto(hostile.origin + "/"), 20, "the hostile page")
        popup = await opened.value
        await pool.bounded(popup.wait_for_load_state(), 20, "the popup")
        await asyncio.wait_for(hostile.done.wait(), 20)
        script = await pool.bounded(page.evaluate("document.body.dataset.script"), 5, "read")
        own = await pool.bounded(page.evaluate("document.body.dataset.own"), 5, "read")
        error = None
        try:
            await pool.bounded(
                page.goto(f"{hostile.origin}/redirect?to={hostile.at('127.0.0.4', '/navigated')}"), 20, "redirect"
            )
        except PageError as exc:
            error = str(exc)
        return script, own, error


@pytest.mark.browser
@pytest.mark.parametrize("exit_index", [None, 0, 2], ids=["direct", "proxy", "proxy-with-credentials"])
async def test_a_hostile_maps_page_reaches_no_local_service(exit_index: int | None) -> None:
    metrics = Metrics(process=False)
    async with _hostile(metadata=True) as hostile, contextlib.AsyncExitStack() as stack:
        proxy: ProxySettings | None = None
        exit_proxy = None
        if exit_index is not None:
            # The exit's own address is configuration: only the hosts asked for are judged.
            fleet = await stack.enter_async_context(ProxyFleet(3))
            exit_proxy = fleet.proxies[exit_index]
            proxy = {"server": exit_proxy.url}
            if exit_proxy.username is not None:
                proxy["username"], proxy["password"] = exit_proxy.username, fleet.password
        guard = PageGuard(hostile.origin, metrics=metrics)
        pool = await stack.enter_async_context(BrowserPool(_settings(), guard=guard, proxy=proxy))
        script, own, error = await _visit(pool, hostile)

    assert hostile.hits == [], "a recorder saw a request the guard should have refused"
    # The page's own loads from the Maps origin went through, and ran.
    assert (script, own) == ("ran", "ok")
    assert {"/", "/own.js", "/own-data", "/worker.js", "/done"} <= set(hostile.own)
    # The redirect from Google's origin to a local address ended the navigation there.
    assert error is not None
    assert "ERR_BLOCKED_BY_CLIENT" in error
    refused = metrics.registry.get_sample_value("leadlawk_browser_refused_total", {"kind": "address"}) or 0
    # script, POST, two redirects of the page, the metadata frame, the worker's two, the
    # WebSocket, the navigation's redirect (the image is never asked for: images are off).
    assert refused >= 9, refused
    # A popup cannot have its redirect hops judged in time: it loads nothing, even from the origin.
    assert metrics.registry.get_sample_value("leadlawk_browser_refused_total", {"kind": "popup"}) == 1
    assert "/popup-redirect" not in hostile.own
    if exit_proxy is not None:
        assert exit_proxy.connections > 0, "the browser's loads went through the exit"


@pytest.mark.browser
async def test_without_the_guard_the_same_page_reaches_every_recorder() -> None:
    async with _hostile(metadata=False) as hostile, BrowserPool(_settings()) as pool:
        _, _, error = await _visit(pool, hostile)
    assert error is None
    assert {
        "127.0.0.2/script.js", "127.0.0.3/api", "127.0.0.4/fetched", "127.0.0.4/framed",
        "127.0.0.5/worker", "127.0.0.5/worker-redirected", "127.0.0.6/socket", "127.0.0.4/popup",
        "127.0.0.4/navigated",
    } <= set(hostile.hits), hostile.hits


@pytest.mark.browser
async def test_a_relaunched_browser_is_guarded_too() -> None:
    settings = _settings().model_copy(update={"page_recycle_after": 1, "browser_recycle_after": 1})
    async with _hostile(metadata=False) as hostile, BrowserPool(settings, guard=PageGuard(hostile.origin)) as pool:
        for _ in range(2):  # the second page comes from a new browser: one page per browser
            async with pool.page() as page:
                await pool.bounded(page.goto(hostile.origin + "/own-data"), 20, "the origin")
                with pytest.raises(PageError, match="ERR_BLOCKED_BY_CLIENT"):
                    await pool.bounded(page.goto(hostile.at("127.0.0.2", "/direct")), 20, "a recorder")
                redirect = f"{hostile.origin}/redirect?to={hostile.at('127.0.0.4', '/redirected')}"
                with pytest.raises(PageError, match="ERR_BLOCKED_BY_CLIENT"):
                    await pool.bounded(page.goto(redirect), 20, "a redirect to a recorder")
        assert pool.stats.restarts == 1
    assert hostile.hits == []


@pytest.mark.browser
async def test_a_redirect_inside_a_cross_site_iframe_is_judged() -> None:
    """An allowed site in an iframe (a public site, in production; here 127.0.0.7 through
    ``allowed_networks``) whose own fetch redirects to loopback: the hop is refused."""
    async with _hostile(metadata=False) as hostile, contextlib.AsyncExitStack() as stack:
        framed = asyncio.Event()

        async def embedded(request: web.Request) -> web.Response:
            if request.path == "/redirect":
                raise web.HTTPFound(request.query["to"])
            if request.path == "/settled":
                framed.set()
                return web.Response(text="ok")
            target = hostile.at("127.0.0.4", "/from-the-iframe")
            script = f"fetch('/redirect?to={target}', {{mode: 'no-cors'}}).finally(() => fetch('/settled'))"
            return web.Response(text=f"<script>{script}</script>", content_type="text/html")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", embedded)
        port = await stack.enter_async_context(_served(app, "127.0.0.7"))
        guard = PageGuard.from_settings(hostile.origin, [ip_network("127.0.0.7/32")])
        pool = await stack.enter_async_context(BrowserPool(_settings(), guard=guard))
        async with pool.page() as page:
            await pool.bounded(page.goto(hostile.origin + "/own-data"), 20, "the origin")
            frame = f"<iframe src='http://127.0.0.7:{port}/'></iframe>"
            await pool.bounded(page.set_content(frame), 20, "the iframe")
            await asyncio.wait_for(framed.wait(), 20)
    assert hostile.hits == []


# -- a public name that resolves to loopback: Chromium's own Local Network Access ------------------
#
# The guard cannot see what Chromium resolves a public name to. Chromium (Local Network Access,
# on by default since about version 142) refuses a public page's requests to a local or loopback
# address, whatever name led there. On this machine every server is on loopback, so the test tells
# Chromium to treat the page's server as public (--ip-address-space-overrides) and to resolve a
# public-looking name to the recorder on 127.0.0.1 (--host-resolver-rules), as DNS rebinding would.


async def _rebound(public: bool) -> list[str]:
    """The recorder's hits after a guarded page on maps.test asks for rebind.test (-> 127.0.0.1)."""
    from playwright.async_api import async_playwright

    from leadlawk_daemon.maps.browser import LAUNCH_ARGS, resolve_executable
    from leadlawk_daemon.maps.page_guard import GUARD_LAUNCH_ARGS

    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="secret", headers={"Access-Control-Allow-Origin": "*"})

    def origin_app(recorder_port: int) -> web.Application:
        target = f"http://rebind.test:{recorder_port}"

        async def page(request: web.Request) -> web.Response:
            return web.Response(content_type="text/html", text=(
                f'<script>fetch("{target}/fetch").then(r => r.text())'
                ".then(t => document.title = 'read ' + t, e => document.title = 'refused');</script>"
            ))  # fmt: skip

        app = web.Application()
        app.router.add_get("/", page)
        return app

    recorder = web.Application()
    recorder.router.add_route("*", "/{tail:.*}", record)
    async with contextlib.AsyncExitStack() as stack:
        recorder_port = await stack.enter_async_context(_served(recorder, "127.0.0.1"))
        origin_port = await stack.enter_async_context(_served(origin_app(recorder_port), "127.0.0.1"))
        resolving = "--host-resolver-rules=MAP maps.test 127.0.0.1, MAP rebind.test 127.0.0.1"
        args = [*LAUNCH_ARGS, *GUARD_LAUNCH_ARGS, resolving]
        if public:
            args.append(f"--ip-address-space-overrides=127.0.0.1:{origin_port}=public")
        guard = PageGuard(f"http://maps.test:{origin_port}")
        assert guard.refusal(f"http://rebind.test:{recorder_port}/") is None  # a public name: the guard lets it be
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=resolve_executable(None, pw.chromium.executable_path), args=args, chromium_sandbox=False
            )
            try:
                context = await browser.new_context()
                await guard.attach(context)
                tab = await context.new_page()
                await guard.watch(tab)
                await tab.goto(f"http://maps.test:{origin_port}/", timeout=20_000)
                await tab.wait_for_function("document.title.length > 0", timeout=20_000)
            finally:
                await browser.close()
    return hits


@pytest.mark.browser
@pytest.mark.timeout(90)
async def test_a_public_name_rebound_to_loopback_is_refused_by_chromium_itself() -> None:
    assert await _rebound(public=True) == []
    # The control: the same page served from a local address reaches the recorder by that name,
    # so the refusal above is Chromium's, for the public page, not the name or the guard.
    assert await _rebound(public=False) == ["/fetch"]
