"""The scraper gets past Google's consent page in every listed language, by the page's forms.

A real Chromium against the Maps replica with its ``consent`` fault: each search meets the
interstitial in the language of its ``hl``. What a user would check: the search's businesses come
out, the page it passed spoke that language and no English, and the replica recorded the answer
the configuration asked for (``maps.consent``: reject by default, accept on request, accept-all
where a page has no reject-all form); an answer Google does not keep is a block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from leadlawk_daemon.maps.blocking import CONSENT_LOOP, PROBE_JS, BlockedError, PageProbe
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.consent import ACTION_JS, answer_selectors
from leadlawk_daemon.maps.scraper import ScrapeRequest
from leadlawk_daemon.replicas.maps_consent import CONSENT_LANGUAGES
from tests.support.replicas import MapsReplica
from tests.test_consent_page import ENGLISH_WORDS, LANGUAGES, Page
from tests.test_scraper import Collected, browser_settings, scraper_for

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module"), pytest.mark.maps_replica(seed=11)]

QUERY, LOCATION = "bakers", "Omaha, NE"
LIMIT = 5


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool() -> AsyncIterator[BrowserPool]:
    async with BrowserPool(browser_settings(pages=1)) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module")
async def first_visit(maps_replica: MapsReplica, pool: BrowserPool) -> AsyncIterator[None]:
    """A browser that has never answered (no consent cookie) and a replica that has counted nothing."""
    async with pool.page() as page:
        await page.context.clear_cookies()
    async with maps_replica.http.post(f"{maps_replica.base_url}/_stats/reset") as response:
        response.raise_for_status()
    yield
    await maps_replica.faults()


async def scrape(maps_replica: MapsReplica, pool: BrowserPool, **maps: Any) -> list[str]:
    out = Collected()
    await scraper_for(pool, maps_replica, **maps).scrape(ScrapeRequest(QUERY, LOCATION, limit=LIMIT), out, set())
    return out.place_ids


async def expected(maps_replica: MapsReplica) -> list[str]:
    return [a["place_id"] for a in await maps_replica.answers(QUERY, LOCATION)][:LIMIT]


async def consent_answers(maps_replica: MapsReplica) -> dict[str, dict[str, int]]:
    answers: dict[str, dict[str, int]] = (await maps_replica.stats())["consent_answers"]
    return answers


@pytest.mark.parametrize("language", LANGUAGES)
async def test_consent_is_passed_in_each_language_with_the_reject_all_form(
    language: str, maps_replica: MapsReplica, pool: BrowserPool, first_visit: None
) -> None:
    await maps_replica.faults(consent=True)
    page = Page(await maps_replica.page(f"/consent?hl={language}&continue=/maps"))
    assert page.lang == language
    assert CONSENT_LANGUAGES[language].reject_all in page.text
    if language != "en":
        assert not page.words & ENGLISH_WORDS, sorted(page.words & ENGLISH_WORDS)

    assert await scrape(maps_replica, pool, language=language) == await expected(maps_replica)
    assert await consent_answers(maps_replica) == {language: {"reject": 1}}


async def test_maps_consent_accept_answers_with_the_accept_all_form(
    maps_replica: MapsReplica, pool: BrowserPool, first_visit: None
) -> None:
    await maps_replica.faults(consent=True)
    assert await scrape(maps_replica, pool, language="de", consent="accept") == await expected(maps_replica)
    assert await consent_answers(maps_replica) == {"de": {"accept": 1}}


async def test_without_a_reject_all_form_accept_all_is_the_answer(
    maps_replica: MapsReplica, pool: BrowserPool, first_visit: None
) -> None:
    await maps_replica.faults(consent="accept_only")
    assert await scrape(maps_replica, pool, language="fr") == await expected(maps_replica)
    assert await consent_answers(maps_replica) == {"fr": {"accept": 1}}


async def test_an_answer_google_does_not_keep_is_a_consent_loop_block(
    maps_replica: MapsReplica, pool: BrowserPool, first_visit: None
) -> None:
    await maps_replica.faults(consent="loop")
    with pytest.raises(BlockedError) as raised:
        await scrape(maps_replica, pool, language="pl")
    assert raised.value.reason == CONSENT_LOOP
    # Answered twice (the reject-all form both times), served a third time: no more answers.
    assert await consent_answers(maps_replica) == {"pl": {"reject": 2}}


# Google's own shape, as served on consent.google.com (German): forms posting to its /save.
GOOGLE_DE = """<!DOCTYPE html><html lang="de"><body><h1>Bevor Sie zu Google weitergehen</h1>
<form action="https://consent.google.com/save" method="POST"><input type="hidden" name="gl" value="DE">
<input type="hidden" name="hl" value="de"><input type="hidden" name="set_eom" value="true">
<button aria-label="Alle ablehnen"><span>Alle ablehnen</span></button></form>
<form action="https://consent.google.com/save" method="POST"><input type="hidden" name="gl" value="DE">
<input type="hidden" name="hl" value="de"><input type="hidden" name="set_eom" value="false">
<input type="hidden" name="set_sc" value="true"><input type="hidden" name="set_aps" value="true">
<button aria-label="Alle akzeptieren"><span>Alle akzeptieren</span></button></form>
<a href="https://consent.google.com/d?hl=de">Weitere Optionen</a></body></html>"""


@pytest.mark.parametrize(
    ("html", "consent"),
    [
        (GOOGLE_DE, True),
        ("<form><button>Reject all</button></form><p>Alle ablehnen</p>", False),  # words alone are not it
    ],
)
async def test_the_rendered_page_is_known_by_its_forms(html: str, consent: bool, pool: BrowserPool) -> None:
    async with pool.page() as page:
        await page.set_content(html)
        assert PageProbe.from_js(await page.evaluate(PROBE_JS)).consent is consent


@pytest.mark.parametrize(("answer", "label"), [("reject", "Alle ablehnen"), ("accept", "Alle akzeptieren")])
async def test_the_answer_is_chosen_by_the_hidden_field(answer: Any, label: str, pool: BrowserPool) -> None:
    async with pool.page() as page:
        await page.set_content(GOOGLE_DE)
        button = page.locator(answer_selectors(answer)[0])
        assert await button.count() == 1
        assert await button.get_attribute("aria-label") == label
        assert await button.evaluate(ACTION_JS) == "https://consent.google.com/save"
