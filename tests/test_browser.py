"""The browser pool against a real Chromium: launch, bounded waits, crash, recycling, no leftovers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
from pathlib import Path

import pytest

from leadlawk_daemon.maps import proctree
from leadlawk_daemon.maps.browser import (
    BrowserCrashedError,
    BrowserLaunchError,
    BrowserPool,
    BrowserTimeoutError,
    resolve_executable,
)
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import BrowserSettings


def browser_settings(**overrides: object) -> BrowserSettings:
    values: dict[str, object] = {
        "executable": None,
        "headless": True,
        "pages": 2,
        "page_recycle_after": 25,
        "browser_recycle_after": 200,
        "memory_limit_mb": 4096,
        "launch_timeout": 30.0,
    }
    values.update(overrides)
    return BrowserSettings.model_validate(values)


def _chromium_processes(user_data_dir: str) -> list[int]:
    return [p.pid for p in proctree.browser_processes(user_data_dir)]


def _fake_executable(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_configured_executable_wins(tmp_path: Path) -> None:
    mine = _fake_executable(tmp_path, "mine")
    other = _fake_executable(tmp_path, "other")
    assert resolve_executable(mine, other, environ={}) == mine
    assert resolve_executable(None, other, environ={"LEADLAWK_CHROMIUM": mine}) == mine


def test_playwright_browser_before_system_browser(tmp_path: Path) -> None:
    own = _fake_executable(tmp_path, "own")
    system = _fake_executable(tmp_path, "system")
    assert resolve_executable(None, own, environ={}, system=(system,)) == own
    missing = str(tmp_path / "not-installed")
    assert resolve_executable(None, missing, environ={}, system=(str(tmp_path / "nope"), system)) == system


def test_bad_configured_executable_is_named(tmp_path: Path) -> None:
    wrong = str(tmp_path / "no-such-chrome")
    with pytest.raises(BrowserLaunchError, match="no-such-chrome"):
        resolve_executable(wrong, None, environ={}, system=())
    with pytest.raises(BrowserLaunchError, match="LEADLAWK_CHROMIUM"):
        resolve_executable(None, None, environ={}, system=(wrong,))


@pytest.mark.browser
async def test_pool_leaves_no_chromium_behind() -> None:
    async with BrowserPool(browser_settings()) as pool:
        async with pool.page() as page:
            await pool.bounded(page.set_content("<p id=x>hello</p>"), 10, "set content")
            assert await pool.bounded(page.inner_text("#x"), 10, "read") == "hello"
        user_data_dir = pool.user_data_dir
        assert user_data_dir is not None
        pids = pool.pids()
        assert len(pids) >= 2, "a browser main process and its helpers"
        assert await pool.memory_bytes() > 10 * 1024 * 1024
    # Gone at once: no process of that browser remains, and its profile is deleted.
    assert _chromium_processes(user_data_dir) == []
    assert not any(proctree.snapshot().get(pid) for pid in pids)
    assert not await asyncio.to_thread(os.path.exists, user_data_dir)


@pytest.mark.browser
async def test_every_chromium_process_yields_the_cpu_to_the_daemon() -> None:
    """Rendering Google's pages must not take the CPU from the loop that renews leases: each
    process of the browser, the renderers of pages opened after launch included, runs nicer."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    async with BrowserPool(browser_settings(nice=5, pages=3)) as pool, contextlib.AsyncExitStack() as pages:
        for _ in range(3):  # the launch's blank page, then two opened later, each with its renderer
            page = await pages.enter_async_context(pool.page())
            await pool.bounded(page.set_content("<p>a renderer</p>"), 10, "set content")
        niceness = {pid: os.getpriority(os.PRIO_PROCESS, pid) for pid in pool.pids()}
        assert len(niceness) >= 3, "the browser, its zygote and renderers"
        behind = {pid: value for pid, value in niceness.items() if value < ours + 5}
        assert not behind, [(value, proctree.snapshot()[pid].cmdline[:120]) for pid, value in behind.items()]
    async with BrowserPool(browser_settings(nice=0)) as pool:  # 0: left as Chromium sets them
        assert min(os.getpriority(os.PRIO_PROCESS, pid) for pid in pool.pids()) < ours + 5


@pytest.mark.browser
async def test_hung_operation_times_out() -> None:
    async with BrowserPool(browser_settings()) as pool, pool.page() as page:
        with pytest.raises(BrowserTimeoutError, match="never true"):
            await pool.bounded(page.wait_for_function("() => false", timeout=0), 0.5, "never true")


@pytest.mark.browser
async def test_killed_browser_surfaces_then_relaunches() -> None:
    metrics = Metrics(process=False)
    async with BrowserPool(browser_settings(pages=1), metrics=metrics) as pool:
        first_dir = pool.user_data_dir
        assert first_dir is not None

        async def wait_while_killed() -> None:
            async with pool.page() as page:
                waiting = asyncio.create_task(
                    pool.bounded(page.wait_for_function("() => false", timeout=0), 60, "waiting")
                )
                # Calls on a page are ordered: once this answers, the wait above is in flight.
                await pool.bounded(page.title(), 10, "title")
                assert not waiting.done()
                os.kill(pool.pids()[0], signal.SIGKILL)
                # Far sooner than the 60 s bound: the death is noticed, not waited out.
                async with asyncio.timeout(15):
                    await waiting

        with pytest.raises(BrowserCrashedError):
            await wait_while_killed()
        async with pool.page() as page:
            await pool.bounded(page.set_content("<p>back</p>"), 10, "set content")
        # The relaunch disposed of every process the dead browser left behind.
        assert _chromium_processes(first_dir) == []
        assert pool.stats.restarts == 1
        assert pool.stats.recycle_reasons == ["crashed"]
        assert metrics.browser_restarts._value.get() == 1
        assert pool.user_data_dir != first_dir


@pytest.mark.browser
async def test_pages_and_browser_recycled_at_configured_counts() -> None:
    settings = browser_settings(pages=1, page_recycle_after=2, browser_recycle_after=3)
    async with BrowserPool(settings) as pool:
        launches: list[int] = []
        pages: list[object] = []  # held, so that identities stay distinct
        for _ in range(8):
            async with pool.page() as page:
                await pool.bounded(page.set_content("<p>x</p>"), 10, "set content")
                launches.append(pool.stats.launches)
                pages.append(page)
        # Each page serves 2 uses; the first browser opens 3 pages (6 uses), then it is replaced.
        assert launches == [1, 1, 1, 1, 1, 1, 2, 2]
        assert [len({id(p) for p in pages[i : i + 2]}) for i in range(0, 8, 2)] == [1, 1, 1, 1]
        assert len({id(p) for p in pages}) == 4
        assert pool.stats.restarts == 1
        assert pool.stats.recycle_reasons == ["opened 3 pages"]
        assert pool.stats.pages_recycled == 4  # the 8th use retires the second browser's first page
        assert pool.stats.pages_opened == 4


@pytest.mark.browser
async def test_browser_recycled_when_memory_passes_limit() -> None:
    # Chromium's tree alone weighs more than the smallest limit allowed (64 MB).
    async with BrowserPool(browser_settings(pages=1, memory_limit_mb=64)) as pool:
        assert await pool.memory_bytes() > 64 * 1024 * 1024
        async with pool.page() as page:
            await pool.bounded(page.set_content("<p>x</p>"), 10, "set content")
        assert pool.stats.restarts == 1
        assert pool.stats.recycle_reasons[0].startswith("memory ")
