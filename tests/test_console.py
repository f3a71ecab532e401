"""The operator console in real Chromium (Playwright) against a real daemon and the replicas.

One daemon (real PostgreSQL, no Redis: the live progress comes from the daemon's own event bus),
one pair of replicas and one Chromium serve the whole module; each test has a browser context of
its own (its own cookies) and a page that fails the test on any dialog, page error or console
error (a CSP violation is a console error). Screenshots of every page land in the test's
``tmp_path``; with ``LEADLAWK_SCREENSHOT`` set (``make screenshot``) the jobs page's is also
``docs/console.png``, the README's: a test run writes nothing into the work tree.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl
import orjson
import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Dialog, Error, Page, async_playwright, expect

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.browser import resolve_executable
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica
from leadlawk_daemon.store import open_store
from leadlawk_daemon.store.base import JobLead
from tests.conftest import PG_ADMIN_DSN
from tests.daemon_process import ROOT, DaemonProcess
from tests.databases import throwaway_database
from tests.test_daemon_jobs import daemon_env, wait_job
from tests.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

MAX_RESULTS = 12
HOSTILE_NAMES = ("<img src=x onerror=alert(1)>", "<script>alert(2)</script> Plumbing")
FINISHED = ("succeeded", "failed", "cancelled", "partial")


@dataclass
class Console:
    daemon: DaemonProcess
    browser: Browser
    pg: str
    maps_url: str
    shots: list[Path] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.daemon.base


async def _faults(maps_url: str, faults: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{maps_url}/_faults", json=faults) as response:
        assert response.status == 200, await response.text()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    async with (
        serve_maps_replica("127.0.0.1", 0, max_results=MAX_RESULTS) as maps_url,
        serve_pagespeed_replica("127.0.0.1", 0) as psi_url,
        throwaway_database(PG_ADMIN_DSN, "leadlawk_console") as pg,
    ):
        env = daemon_env(
            maps_url, psi_url, pg, None,
            LEADLAWK__CHAOS__ENABLED="false",
            LEADLAWK__JOBS__PROGRESS_INTERVAL="300ms",
            LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__FAILURE_THRESHOLD="2",
            LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__RESET_TIMEOUT="30s",
            LEADLAWK__RESILIENCE__RETRY__BASE_DELAY="50ms",
            LEADLAWK__RESILIENCE__RETRY__MAX_DELAY="200ms",
            LEADLAWK__MAPS__NAVIGATION_TIMEOUT="5",
        )
        async with DaemonProcess(tmp, env=env, name="console") as daemon, async_playwright() as pw:
            await daemon.wait_status("/health/ready", 200, within=60)
            chromium = resolve_executable(None, pw.chromium.executable_path)
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                yield Console(daemon, browser, pg, maps_url)
            finally:
                await browser.close()


@dataclass
class Watched:
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def clean(self) -> None:
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"
        assert not self.errors, f"errors in the page: {self.errors}"


@pytest_asyncio.fixture(loop_scope="module")
async def watched(console: Console) -> AsyncIterator[Watched]:
    """A page in a fresh context, watched for dialogs, page errors and console errors."""
    context = await console.browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    seen = Watched(page)

    async def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.errors.append(message.text)

    def on_page_error(error: Error) -> None:
        seen.errors.append(str(error))

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield seen
    finally:
        await context.close()
    seen.clean()


async def shoot(page: Page, path: Path, *, full_page: bool = True) -> None:
    shot = await page.screenshot(path=str(path), full_page=full_page)
    assert len(shot) > 5_000


async def submit_http(console: Console, spec: dict[str, Any]) -> str:
    code, body = await console.daemon.post("/jobs", spec)
    assert code == 202, body
    return str(body["id"])


def row(page: Page, job_id: str, selector: str) -> Any:
    return page.locator(f'tr[data-job="{job_id}"] {selector}')


# -- jobs: submit, live progress, leads -----------------------------------------------------------


async def test_a_job_submitted_through_the_form_reaches_succeeded_live_and_shows_its_leads(
    console: Console, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    await _faults(console.maps_url, {"slow_ms": 150})  # a job the page sees running, not one already done
    try:
        await _submit_and_follow(console, page, tmp_path)
    finally:
        await _faults(console.maps_url, {})


async def _submit_and_follow(console: Console, page: Page, tmp_path: Path) -> None:
    await page.goto(console.base + "/")
    await page.get_by_label("What (query)").fill("plumbers")
    await page.get_by_label("Where (location)").fill("Omaha, NE")
    await page.get_by_label("Limit").fill("10")
    await page.get_by_label("PageSpeed: at most this mobile score (0–100)").fill("60")
    await page.get_by_role("button", name="Submit job").click()
    await expect(page.locator("#submitted")).to_contain_text("submitted")
    job_id = (await page.locator("#submitted a").inner_text()).strip()
    # From here on the page is never reloaded: a marker in the page's own JavaScript world survives.
    await page.evaluate("window.__sameDocument = true")
    assert await row(page, job_id, '[data-field="status"]').inner_text() in ("queued", "running")
    await expect(page.locator("#live-state")).to_have_text("live")
    await expect(row(page, job_id, '[data-field="status"]')).to_have_text("succeeded", timeout=90_000)
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    bar = row(page, job_id, "progress")
    assert await bar.evaluate("b => b.value === b.max")
    await expect(row(page, job_id, '[data-counter="written"]')).to_have_text("10")
    await expect(row(page, job_id, '[data-field="cancel"]')).to_be_hidden()
    await shoot(page, tmp_path / "jobs.png", full_page=False)
    if os.environ.get("LEADLAWK_SCREENSHOT"):
        await shoot(page, ROOT / "docs" / "console.png", full_page=False)

    await row(page, job_id, "a").click()
    await expect(page.locator("h1")).to_have_text(f"Job {job_id}")
    await expect(page.locator("table.leads tbody tr")).to_have_count(10)
    first = page.locator("table.leads tbody tr").first
    await expect(first.get_by_role("link", name=re.compile("^Maps"))).to_be_visible()
    await shoot(page, tmp_path / "job.png")


async def test_the_form_shows_each_problem_next_to_the_field_it_names(console: Console, watched: Watched) -> None:
    page = watched.page
    await page.goto(console.base + "/")
    await page.get_by_label("Where (location)").fill("Omaha, NE")
    await page.get_by_label("Limit").fill("100000")  # the validator's "limit: must be between …"
    await page.get_by_label("Minimum rating").fill("lots")  # the form's own number check
    await page.get_by_role("button", name="Submit job").click()
    await expect(page.locator("#query-error")).to_contain_text("is required")
    await expect(page.locator("#limit-error")).to_contain_text("between 1 and 500")
    await expect(page.locator("#min_rating-error")).to_contain_text("a number")
    assert await page.get_by_label("Limit").get_attribute("aria-invalid") == "true"
    assert await page.get_by_label("Where (location)").input_value() == "Omaha, NE"  # kept
    code, body = await console.daemon.get("/jobs")
    assert code == 200
    assert all(job["spec"].get("limit") != 100000 for job in body["jobs"])


# -- job detail: filter and download ---------------------------------------------------------------


async def test_filtering_to_qualified_leads_and_downloading_them_matches_leadlawk_export(
    console: Console, watched: Watched, tmp_path: Path
) -> None:
    job_id = await submit_http(console, {
        "query": "roofers", "location": "Omaha, NE", "limit": MAX_RESULTS, "pagespeed": {"max_score": 60},
    })
    job = await wait_job(console.daemon, job_id)
    assert job["status"] == "succeeded", job
    qualified = job["counters"]["qualified"]
    assert 0 < qualified < MAX_RESULTS, job["counters"]  # the filter must have something to remove

    page = watched.page
    await page.goto(f"{console.base}/console/jobs/{job_id}")
    await expect(page.locator("table.leads tbody tr")).to_have_count(MAX_RESULTS)
    await page.get_by_label("Qualified").select_option("yes")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("table.leads tbody tr")).to_have_count(qualified)
    assert set(await page.locator('table.leads [data-field="qualified"]').all_inner_texts()) == {"yes"}
    await shoot(page, tmp_path / "job-qualified.png")

    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV").click()
    download = await info.value
    saved = tmp_path / "console.csv"
    await download.save_as(saved)
    exported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "leadlawk_daemon", "export", "--job", job_id, "--qualified"],
        capture_output=True, timeout=60, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": console.pg, "PYTHONPATH": str(ROOT)},
    )
    assert exported.returncode == 0, exported.stderr.decode()[-2000:]
    assert saved.read_bytes() == exported.stdout
    assert saved.read_bytes().count(b"\n") == qualified + 1

    # Sorting by mobile score, and the other formats, through the same table.
    for order in ("ascending", "descending"):
        await page.get_by_role("link", name=re.compile("^Mobile score")).click()
        await expect(page.locator(f'th[aria-sort="{order}"]')).to_contain_text("Mobile score")
        cells = await page.locator("table.leads tbody td:nth-child(7)").all_inner_texts()
        scores = [float(text) for text in cells if text]
        assert scores
        assert scores == sorted(scores, reverse=order == "descending")
        assert all(cells[: len(scores)]), "leads without a score come last"
    await expect(page.locator("table.leads tbody tr")).to_have_count(qualified)  # the filter kept
    for fmt in ("JSONL", "XLSX"):
        async with page.expect_download() as info:
            await page.get_by_role("link", name=fmt).click()
        download = await info.value
        assert download.suggested_filename == f"leads-{job_id}.{fmt.lower()}"
        await download.save_as(tmp_path / download.suggested_filename)
    jsonl = (tmp_path / f"leads-{job_id}.jsonl").read_text().splitlines()
    assert [orjson.loads(line)["qualified"] for line in jsonl] == [True] * qualified
    book = openpyxl.load_workbook(tmp_path / f"leads-{job_id}.xlsx", read_only=True)
    try:
        assert book["leads"].max_row == qualified + 1  # the header and the qualified leads, as export writes
    finally:
        book.close()


# -- cancel, dead letters ---------------------------------------------------------------------------


async def test_cancelling_a_running_job_from_the_jobs_page(console: Console, watched: Watched, tmp_path: Path) -> None:
    # Long enough to be seen running, and still running when clicked on a loaded machine (at 400 ms
    # a fresh-clone run saw the job end before the click).
    await _faults(console.maps_url, {"slow_ms": 1500})
    try:
        page = watched.page
        await page.goto(console.base + "/")
        await expect(page.locator("#live-state")).to_have_text("live")
        # A job submitted elsewhere while the page is open is announced, and shown on a click.
        job_id = await submit_http(console, {"query": "painters", "location": "Lincoln, NE", "limit": MAX_RESULTS,
                                             "pagespeed": {"enabled": False}})
        await page.get_by_role("link", name="1 new job: show").click()
        await expect(page.locator("#live-state")).to_have_text("live")
        await expect(row(page, job_id, '[data-field="status"]')).to_have_text("running", timeout=30_000)
        await shoot(page, tmp_path / "jobs-running.png", full_page=False)
        await page.get_by_role("button", name=f"Cancel job {job_id}").click()
        await expect(row(page, job_id, '[data-field="status"]')).to_have_text("cancelled", timeout=20_000)
        await page.evaluate("window.__sameDocument = true")
        await expect(row(page, job_id, '[data-field="cancel"]')).to_be_hidden()
    finally:
        await _faults(console.maps_url, {})
    code, job = await console.daemon.get(f"/jobs/{job_id}")
    assert (code, job["status"]) == (200, "cancelled")


async def test_a_dead_letter_is_listed_shown_and_replayed(console: Console, watched: Watched, tmp_path: Path) -> None:
    spec = {"id": "from-a-dead-letter", "query": "dentists", "location": "Omaha, NE", "limit": 3,
            "pagespeed": {"enabled": False}}
    async with open_store(console.pg) as store:
        letter_id = await store.add_dead_letter("message", {"spec": spec}, "redis: invalid message <b>bold</b>")
    page = watched.page
    await page.goto(console.base + "/console/dead-letters")
    await expect(page.locator(f'tr[data-letter="{letter_id}"]')).to_contain_text("<b>bold</b>")
    await shoot(page, tmp_path / "dead-letters.png")
    await page.get_by_role("link", name=str(letter_id), exact=True).click()
    await expect(page.locator("h1")).to_have_text(f"Dead letter {letter_id}")
    await expect(page.locator("pre").nth(1)).to_contain_text("from-a-dead-letter")
    await shoot(page, tmp_path / "dead-letter.png")
    await page.get_by_role("button", name="Replay").click()
    await expect(page.locator("#outcome")).to_contain_text(f"Dead letter {letter_id} replayed")
    job = await wait_job(console.daemon, "from-a-dead-letter")
    assert job["status"] == "succeeded", job
    async with open_store(console.pg) as store:
        replayed = await store.get_dead_letter(letter_id)
    assert replayed is not None
    assert replayed.replayed_at is not None


# -- safety -------------------------------------------------------------------------------------


async def test_a_business_name_carrying_html_renders_as_text_and_runs_nothing(
    console: Console, watched: Watched, tmp_path: Path
) -> None:
    async with open_store(console.pg) as store:
        await store.create_job("job-hostile", {"id": "job-hostile", "query": "<svg onload=alert(3)>", "limit": 2})
        await store.upsert_leads([
            Listing(name=HOSTILE_NAMES[0], place_id="ChIJhostile1", website="javascript:alert(4)",
                    maps_url="javascript:alert(5)", category="<i>x</i>"),
            Listing(name=HOSTILE_NAMES[1], place_id="ChIJhostile2", website="https://example.com/\"><script>"),
        ])
        await store.upsert_job_leads("job-hostile", [
            JobLead("ChIJhostile1", 1, True, ["<b>reason</b>"]), JobLead("ChIJhostile2", 2, False, []),
        ])
        await store.cancel_job("job-hostile")  # shown, never run
    page = watched.page
    await page.goto(console.base + "/console/jobs/job-hostile")
    for name in HOSTILE_NAMES:
        await expect(page.locator("td.name").filter(has_text=name)).to_have_count(1)
    assert await page.locator("main img, main script, main svg, main b, main i").count() == 0
    assert await page.locator('a[href^="javascript:"]').count() == 0
    await page.goto(console.base + "/")
    await expect(page.locator('tr[data-job="job-hostile"]')).to_contain_text("<svg onload=alert(3)>")
    await shoot(page, tmp_path / "hostile.png")
    # watched.clean() (the fixture) asserts that no dialog opened and no script error was logged.


async def _csrf_token(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(base + "/") as response:
        assert response.status == 200
        html = await response.text()
    match = re.search(r'name="csrf_token" value="(\d+\.[0-9a-f]{64})"', html)  # ISSUED.HMAC
    assert match is not None
    return match.group(1)


async def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(console: Console) -> None:
    base = console.base
    form = {"query": "csrf-victims", "location": "Omaha, NE", "limit": "1"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        token = await _csrf_token(http, base)
        same = {"Origin": base}
        attempts = {
            "no token": ({**form}, same),
            "wrong token": ({**form, "csrf_token": "0" * 64}, same),
            "another origin": ({**form, "csrf_token": token}, {"Origin": "http://evil.example"}),
            "no origin at all": ({**form, "csrf_token": token}, {}),
        }
        for what, (data, headers) in attempts.items():
            async with http.post(base + "/console/jobs", data=data, headers=headers, allow_redirects=False) as resp:
                assert resp.status == 403, (what, resp.status)
        async with http.post(base + "/console/jobs/anything/cancel", data={}, headers=same,
                             allow_redirects=False) as resp:
            assert resp.status == 403
        # The same POST with both right is accepted: the checks above are what refused.
        async with http.post(base + "/console/jobs", data={**form, "csrf_token": token}, headers=same,
                             allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            job_id = resp.headers["Location"].split("submitted=", 1)[1]
    async with aiohttp.ClientSession() as http, http.post(
        base + "/console/jobs", data={**form, "csrf_token": token}, headers={"Origin": base}, allow_redirects=False
    ) as resp:
        assert resp.status == 403  # the token without its cookie (another browser)
    code, _ = await console.daemon.get(f"/jobs/{job_id}")
    assert code == 200
    code, body = await console.daemon.get("/jobs")
    assert sum(job["spec"]["query"] == "csrf-victims" for job in body["jobs"]) == 1


async def test_every_page_sends_a_strict_content_security_policy(console: Console) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/console/health", "/console/dead-letters", "/console/fleet", "/console/nothing"):
            async with http.get(console.base + path) as response:
                csp = response.headers.get("Content-Security-Policy", "")
                assert "default-src 'self'" in csp, path
                assert "frame-ancestors 'none'" in csp
                assert "unsafe-" not in csp
                assert response.headers.get("X-Content-Type-Options") == "nosniff"


async def test_without_a_token_a_forwarded_request_is_refused(console: Console) -> None:
    forwarded = ({"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"}, {"X-Real-IP": "203.0.113.7"})
    async with aiohttp.ClientSession() as http:
        for headers in forwarded:
            for path in ("/", "/console/health", "/console/events", "/console/jobs/x/leads.csv"):
                async with http.get(console.base + path, headers=headers) as response:
                    assert response.status == 403, (path, headers)
            async with http.post(console.base + "/console/jobs", headers={**headers, "Origin": console.base}) as resp:
                assert resp.status == 403


# -- health, fleet, phone -------------------------------------------------------------------------


async def test_the_health_page_shows_the_maps_breaker_open_while_google_answers_sorry(
    console: Console, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    await page.goto(console.base + "/console/health")
    state = page.locator('tr[data-breaker="google_maps"] [data-field="state"]')
    await expect(state).to_have_text("closed")
    await expect(page.locator('tr[data-actor="scraper"]')).to_be_visible()
    await expect(page.locator("#quotas")).to_contain_text("PageSpeed queries today")
    await _faults(console.maps_url, {"sorry": True})
    try:
        job_id = await submit_http(console, {"query": "bakers", "location": "Omaha, NE", "limit": 5})

        async def breaker_open() -> bool:
            if await state.inner_text() == "open":
                return True
            await page.reload()
            return False

        await eventually(breaker_open, 45, "the Maps breaker open", every=0.3)
        await expect(page.locator('tr[data-breaker="google_maps"] time')).to_be_visible()  # its next trial
        await expect(page.locator('tr[data-check="google_maps"]')).to_contain_text("breaker_open")
        await shoot(page, tmp_path / "health.png")
        await page.goto(console.base + "/")
        await expect(row(page, job_id, '[data-field="waiting"]')).to_contain_text("google_maps", timeout=20_000)
        await shoot(page, tmp_path / "jobs-waiting.png", full_page=False)
        await page.get_by_role("button", name=f"Cancel job {job_id}").click()
        await expect(row(page, job_id, '[data-field="status"]')).to_have_text("cancelled", timeout=20_000)
    finally:
        await _faults(console.maps_url, {})


async def test_fleet_page_and_a_phone_sized_screen(console: Console, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    await page.goto(console.base + "/console/fleet")
    await expect(page.locator("h1")).to_have_text("Fleet")
    await expect(page.locator("main")).to_contain_text("needs Redis")
    await shoot(page, tmp_path / "fleet.png")
    await page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/", "phone-jobs.png"), ("/console/health", "phone-health.png")):
        await page.goto(console.base + path)
        # Wide tables scroll inside their own box; the page itself never scrolls sideways.
        wider = await page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1
                          && !el.parentElement?.closest('.scroll'))
            .map(el => el.tagName + '.' + el.className + '#' + el.id)""")
        assert wider == [], path
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        await shoot(page, tmp_path / name)
    # Every visible form control has a label a screen reader reads, and the keyboard reaches the form.
    unlabelled = await page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter(el => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label')
                      && !(el.tagName === 'BUTTON' && el.textContent.trim()))
        .map(el => el.name || el.outerHTML)""")
    assert unlabelled == []
    await page.goto(console.base + "/")
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id === 'query'"):
            break
    else:
        raise AssertionError("the query field is not reachable with the keyboard")


# -- signing in with a token ------------------------------------------------------------------------


async def test_with_a_token_the_console_asks_for_it_and_keeps_a_cookie_proof(
    console: Console, tmp_path: Path
) -> None:
    token = "console-test-token-" + "x" * 24
    env = {**console.daemon.env, "LEADLAWK_ADMIN_TOKEN": token}
    env = {k: v for k, v in env.items() if k not in ("PORT", "DATABASE_URL")}  # a database of its own
    async with DaemonProcess(tmp_path, env=env, name="token") as daemon:
        await daemon.wait_status("/health/ready", 200, within=60)
        async with aiohttp.ClientSession() as http:
            async with http.get(daemon.base + "/", headers={"Accept": "application/json"}) as response:
                assert response.status == 401
            async with http.get(daemon.base + "/", headers={"X-Forwarded-For": "203.0.113.7"}) as response:
                assert response.status == 401
            async with http.get(daemon.base + "/", headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200
        context = await console.browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(daemon.base + "/console/health")
            await expect(page.locator("h1")).to_have_text("Sign in")
            await shoot(page, tmp_path / "login.png")
            await page.get_by_label("Admin token").fill("not-the-token")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#login-error")).to_contain_text("not the admin token")
            await page.get_by_label("Admin token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("h1")).to_have_text("Health")  # back where it was going
            cookies = {c["name"]: c for c in await context.cookies()}
            session = cookies["leadlawk_session"]
            assert session["httpOnly"]
            assert session["sameSite"] == "Strict"
            assert token not in session["value"]
            # The cookie proves the token to the console only, never to the JSON API.
            answer = await page.request.get(daemon.base + "/jobs")
            assert answer.status == 401
            await page.get_by_role("button", name="Sign out").click()
            await expect(page.locator("h1")).to_have_text("Sign in")
            # Signed out on the server: a copy of the cookie kept from before no longer works.
            kept = {"Cookie": f"leadlawk_session={session['value']}", "Accept": "application/json"}
            async with aiohttp.ClientSession() as http, http.get(daemon.base + "/console/health",
                                                                  headers=kept) as response:
                assert response.status == 401
        finally:
            await context.close()
