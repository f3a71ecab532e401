"""One headless Chromium with a bounded pool of pages: the scraper's bulkhead.

Every await on the browser is bounded (``BrowserPool.bounded``), so a browser that hangs or
dies surfaces as :class:`BrowserTimeoutError` or :class:`BrowserCrashedError` instead of a
silent stall; the actor fails and its supervisor builds a fresh pool. Pages are replaced after
``page_recycle_after`` uses and the whole browser after ``browser_recycle_after`` pages or once
its processes' memory (PSS) passes ``memory_limit_mb``: Chromium's memory only grows.
Leaving the context manager always kills the browser's whole process tree.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from playwright.async_api import BrowserContext, Page, Playwright, ProxySettings, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from leadlawk_daemon.maps import proctree
from leadlawk_daemon.maps.page_guard import GUARD_LAUNCH_ARGS, PageGuard
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import BrowserSettings

__all__ = [
    "LAUNCH_ARGS",
    "SYSTEM_CHROMIUMS",
    "BrowserCrashedError",
    "BrowserError",
    "BrowserLaunchError",
    "BrowserPool",
    "BrowserTimeoutError",
    "PageError",
    "resolve_executable",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# A closed network, running as root in a container: no sandbox (needs user namespaces), no GPU,
# nothing that phones home, and /tmp instead of a small /dev/shm.
LAUNCH_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-breakpad",
    # Listings are text; decoding images would only cost CPU and memory.
    "--blink-settings=imagesEnabled=false",
)
SYSTEM_CHROMIUMS: tuple[str, ...] = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
)
_CLOSE_TIMEOUT = 5.0


class BrowserError(Exception):
    """The browser cannot serve: the actor holding it should fail and be restarted."""


class BrowserLaunchError(BrowserError):
    pass


class BrowserCrashedError(BrowserError):
    pass


class BrowserTimeoutError(BrowserError):
    pass


class PageError(Exception):
    """One page operation failed (a refused connection, a bad selector) while the browser lives."""


class UnreachableError(PageError):
    """The browser is fine but the site is not: refused, reset, DNS, a timeout, a 5xx. An outage of
    the site, never a failure of the job or the browser."""


# Chromium's network errors (page navigations) and Node's (Playwright's request API).
_NETWORK_ERROR = re.compile(
    r"net::ERR_[A-Z_]+|ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH"
    r"|EPIPE|socket hang up",
)
# How long the browser may take to answer a trivial question before it counts as frozen.
_RESPONSIVE_TIMEOUT = 5.0


def _usable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def resolve_executable(
    configured: str | None,
    playwright_own: str | None,
    environ: Mapping[str, str] | None = None,
    system: tuple[str, ...] = SYSTEM_CHROMIUMS,
) -> str:
    """Configuration (or ``LEADLAWK_CHROMIUM``), else Playwright's own Chromium, else the system's.

    A configured path that does not work is an error, not a reason to silently run another browser.
    """
    env = os.environ if environ is None else environ
    chosen = configured or env.get("LEADLAWK_CHROMIUM") or None
    if chosen is not None:
        if not _usable(chosen):
            raise BrowserLaunchError(
                f"browser.executable (LEADLAWK_CHROMIUM): not an executable file: {chosen!r}"
            )
        return chosen
    candidates = ([playwright_own] if playwright_own else []) + list(system)
    for path in candidates:
        if _usable(path):
            return path
    raise BrowserLaunchError(
        "no Chromium found: set browser.executable or LEADLAWK_CHROMIUM (tried " + ", ".join(candidates) + ")"
    )


@dataclass(eq=False)
class _Instance:
    context: BrowserContext
    user_data_dir: str
    number: int
    pages_opened: int = 0
    dead: bool = False


@dataclass(eq=False)
class _Slot:
    page: Page
    instance: _Instance
    uses: int = 0


@dataclass
class PoolStats:
    launches: int = 0
    restarts: int = 0
    pages_opened: int = 0
    pages_recycled: int = 0
    recycle_reasons: list[str] = field(default_factory=list)


class BrowserPool:
    """``async with BrowserPool(settings) as pool: async with pool.page() as page: ...``

    ``page()`` waits for one of ``settings.pages`` slots. A holder must not ask for a second
    page while it holds one (a browser recycle waits for every page to come back).
    """

    def __init__(
        self,
        settings: BrowserSettings,
        *,
        metrics: Metrics | None = None,
        operation_timeout: float = 30.0,
        locale: str | None = None,
        environ: Mapping[str, str] | None = None,
        proxy: ProxySettings | None = None,
        label: str | None = None,
        guard: PageGuard | None = None,
    ) -> None:
        self.settings = settings
        # The egress policy for the pages' own loads (docs/egress-policy.md); the daemon always
        # passes one, tests that drive Chromium by hand need not.
        self.guard = guard
        # The egress exit this browser is pinned to (docs/egress-pool.md): every request it makes,
        # loopback included, goes through ``proxy``; ``label`` is the exit's name for the logs.
        self.proxy = proxy
        self.label = label
        self.metrics = metrics
        self.operation_timeout = operation_timeout
        self.locale = locale
        self._environ = environ
        self.stats = PoolStats()
        self.executable: str | None = None
        self._pw: Playwright | None = None
        self._driver_pid: int | None = None
        self._instance: _Instance | None = None
        self._slots = asyncio.Semaphore(settings.pages)
        self._idle: list[_Slot] = []
        self._busy = 0
        self._returned = asyncio.Condition()
        self._swap = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> BrowserPool:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _start(self) -> None:
        timeout = self.settings.launch_timeout
        try:
            async with asyncio.timeout(timeout):
                self._pw = await async_playwright().start()
        except TimeoutError:
            raise BrowserLaunchError(f"the Playwright driver did not start within {timeout:g}s") from None
        self._driver_pid = _driver_pid(self._pw)
        own = self._pw.chromium.executable_path
        self.executable = resolve_executable(self.settings.executable, own, self._environ)
        self._instance = await self._launch()

    async def _launch(self) -> _Instance:
        assert self._pw is not None
        executable = self.executable
        user_data_dir = await asyncio.to_thread(tempfile.mkdtemp, prefix="leadlawk-chromium-")
        timeout = self.settings.launch_timeout
        try:
            async with asyncio.timeout(timeout + 1.0):
                context = await self._pw.chromium.launch_persistent_context(
                    user_data_dir,
                    executable_path=executable,
                    headless=self.settings.headless,
                    args=list(LAUNCH_ARGS) + (list(GUARD_LAUNCH_ARGS) if self.guard is not None else []),
                    chromium_sandbox=False,
                    locale=self.locale,
                    timeout=timeout * 1000,
                    handle_sigint=False,
                    handle_sigterm=False,
                    handle_sighup=False,
                    proxy=self.proxy,
                    # A service worker's requests bypass request routing, so the page guard
                    # would not see them; the scraper needs none.
                    service_workers="block",
                )
                if self.guard is not None:
                    await self.guard.attach(context)
        except (TimeoutError, PlaywrightError) as exc:
            await self._kill_tree(user_data_dir)
            detail = (
                f"did not start within {timeout:g}s" if isinstance(exc, TimeoutError) else _first_line(exc)
            )
            raise BrowserLaunchError(f"Chromium {executable}: {detail}") from None
        self.stats.launches += 1
        instance = _Instance(context, user_data_dir, self.stats.launches)
        await self._yield_cpu(instance)

        def on_gone(*_: object) -> None:
            instance.dead = True

        context.on("close", on_gone)
        if context.browser is not None:
            context.browser.on("disconnected", on_gone)
        # The persistent context opens one blank page: it is the pool's first.
        for page in context.pages:
            instance.pages_opened += 1
            self.stats.pages_opened += 1
            self._idle.append(_Slot(page, instance))
        log.info(
            "browser launched", extra={"executable": executable, "instance": instance.number, "egress": self.label}
        )
        return instance

    # -- pages ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def page(self) -> AsyncIterator[Page]:
        """A page for one unit of work. An error inside the block discards the page (its state is unknown)."""
        if self._closed:
            raise BrowserError("the browser pool is closed")
        async with self._slots:
            slot = await self._checkout()
            clean = False
            try:
                yield slot.page
                clean = True
            finally:
                await self._checkin(slot, clean)

    async def _checkout(self) -> _Slot:
        async with self._swap:
            instance = self._instance
            reason = await self._recycle_reason(instance)
            if reason is not None:
                await self._relaunch(reason)
            instance = self._instance
            assert instance is not None
            self._busy += 1
            try:
                slot = self._idle.pop() if self._idle else await self._open_page(instance)
            except BaseException:
                self._busy -= 1
                raise
            slot.uses += 1
            return slot

    async def _yield_cpu(self, instance: _Instance) -> None:
        # Chromium sets a foreground renderer back to nice 0 where it may (as root), so a renderer
        # does not keep what it inherits: each new page's processes are lowered again. Off the
        # loop: reading /proc costs milliseconds on a busy host.
        niceness = self.settings.nice
        if niceness > 0:
            await asyncio.to_thread(
                lambda: proctree.lower_priority([p.pid for p in proctree.browser_processes(instance.user_data_dir)],
                                                niceness))

    async def _open_page(self, instance: _Instance) -> _Slot:
        page = await self.bounded(instance.context.new_page(), self.operation_timeout, "opening a page")
        if self.guard is not None:
            await self.bounded(self.guard.watch(page), self.operation_timeout, "guarding a page")
        await self._yield_cpu(instance)
        instance.pages_opened += 1
        self.stats.pages_opened += 1
        return _Slot(page, instance)

    async def _checkin(self, slot: _Slot, clean: bool) -> None:
        try:
            current = slot.instance is self._instance and not slot.instance.dead
            if current and clean and slot.uses < self.settings.page_recycle_after:
                self._idle.append(slot)
            elif current:
                self.stats.pages_recycled += 1
                await self._close_page(slot)
        finally:
            async with self._returned:
                self._busy -= 1
                self._returned.notify_all()

    async def _close_page(self, slot: _Slot) -> None:
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await slot.page.close()
        except (TimeoutError, PlaywrightError):
            # A page that will not close means a browser that no longer answers: replace it.
            slot.instance.dead = True

    async def _recycle_reason(self, instance: _Instance | None) -> str | None:
        if instance is None:
            return "not running"
        if instance.dead:
            return "crashed"
        if not self._idle and instance.pages_opened >= self.settings.browser_recycle_after:
            return f"opened {instance.pages_opened} pages"
        # One /proc walk (in a thread: it reads every process) answers both questions.
        alive, used = await asyncio.to_thread(self._liveness_and_memory, instance)
        if self.metrics is not None:
            self.metrics.browser_memory.set(used)
        if not alive:
            return "crashed"
        if used > self.settings.memory_limit_mb * 1024 * 1024:
            return f"memory {used // (1024 * 1024)} MB over {self.settings.memory_limit_mb} MB"
        return None

    async def _relaunch(self, reason: str) -> None:
        old = self._instance
        if old is not None and not old.dead:
            # Pages in use belong to jobs in flight: let them finish first.
            async with self._returned:
                await self._returned.wait_for(lambda: self._busy == 0)
        self._instance = None
        self._idle.clear()
        if old is not None:
            await self._dispose(old)
        log.warning("browser recycled", extra={"reason": reason})
        self._instance = await self._launch()
        self.stats.restarts += 1
        self.stats.recycle_reasons.append(reason)
        if self.metrics is not None:
            self.metrics.browser_restarts.inc()

    # -- bounded operations ----------------------------------------------------------------------

    async def bounded(self, operation: Awaitable[T], seconds: float, what: str) -> T:
        """Await a browser operation with a deadline, translating failures into our errors."""
        instance = self._instance
        try:
            async with asyncio.timeout(seconds):
                return await operation
        except TimeoutError:
            raise BrowserTimeoutError(f"{what}: no answer within {seconds:g}s") from None
        except PlaywrightTimeoutError as exc:
            # Playwright's own deadline (a navigation that never loads): the same hang, caught sooner.
            raise BrowserTimeoutError(f"{what}: {_first_line(exc)}") from None
        except PlaywrightError as exc:
            if instance is None or instance.dead or not self._alive(instance):
                if instance is not None:
                    instance.dead = True
                raise BrowserCrashedError(f"{what}: the browser is gone ({_first_line(exc)})") from None
            if _NETWORK_ERROR.search(str(exc)):
                raise UnreachableError(f"{what}: {_first_line(exc)}") from None
            raise PageError(f"{what}: {_first_line(exc)}") from None

    def _alive(self, instance: _Instance) -> bool:
        return self._liveness_and_memory(instance, measure=False)[0]

    @staticmethod
    def _liveness_and_memory(instance: _Instance, measure: bool = True) -> tuple[bool, int]:
        if instance.dead:
            return False, 0
        procs = proctree.browser_processes(instance.user_data_dir)
        alive = bool(procs) and "--type=" not in procs[0].cmdline
        return alive, proctree.pss_bytes([p.pid for p in procs]) if measure else 0

    # -- observation -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """The live processes of the current browser, main process first."""
        if self._instance is None:
            return []
        return [p.pid for p in proctree.browser_processes(self._instance.user_data_dir)]

    @property
    def user_data_dir(self) -> str | None:
        return None if self._instance is None else self._instance.user_data_dir

    async def memory_bytes(self) -> int:
        """PSS summed over the browser's processes (0 when it is not running)."""
        return await asyncio.to_thread(lambda: proctree.pss_bytes(self.pids()))

    async def responsive(self, timeout: float = _RESPONSIVE_TIMEOUT) -> bool:  # noqa: ASYNC109
        """Whether the browser answers a round trip now: tells a frozen browser from a site that is
        not answering, after an operation timed out."""
        instance = self._instance
        if instance is None or instance.dead or not self._alive(instance):
            return False
        try:
            async with asyncio.timeout(timeout):
                await instance.context.cookies()
        except (TimeoutError, PlaywrightError):
            return False
        return True

    async def healthy(self) -> bool:
        """For readiness: the browser process is there and answers."""
        instance = self._instance
        if instance is None or not self._alive(instance) or instance.context.browser is None:
            return False
        return instance.context.browser.is_connected()

    # -- shutdown --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close gracefully within bounds, then kill whatever is left of the process tree."""
        self._closed = True
        instance, self._instance = self._instance, None
        self._idle.clear()
        if instance is not None:
            await self._dispose(instance)
        pw, self._pw = self._pw, None
        if pw is not None:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await pw.stop()
            except (TimeoutError, PlaywrightError, OSError):
                log.warning("the Playwright driver did not stop cleanly; killing it")
        if self._driver_pid is not None:
            proctree.kill_processes([self._driver_pid])

    async def _dispose(self, instance: _Instance) -> None:
        if not instance.dead:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await instance.context.close()
            except (TimeoutError, PlaywrightError):
                log.warning("the browser did not close cleanly; killing it")
        instance.dead = True
        await self._kill_tree(instance.user_data_dir)

    async def _kill_tree(self, user_data_dir: str) -> None:
        def kill() -> None:
            proctree.kill_processes([p.pid for p in proctree.browser_processes(user_data_dir)])
            shutil.rmtree(user_data_dir, ignore_errors=True)

        # Shielded: a cancelled shutdown must still not leave Chromium behind.
        await asyncio.shield(asyncio.to_thread(kill))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _driver_pid(pw: Playwright) -> int | None:
    # The Node driver's pid is not public API; it is only a last resort for a driver that hangs.
    with suppress(AttributeError):
        pid = pw._impl_obj._connection._transport._proc.pid  # type: ignore[attr-defined]
        return int(pid)
    return None
