"""The offline Google Maps replica: deterministic answer sets, Google-shaped pages, and its faults."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.maps import parser
from leadlawk_daemon.replicas.maps import create_maps_app, run_maps_replica, serve_maps_replica
from tests.waiting import eventually

SEARCH = "/maps/search/plumbers+in+Omaha,+NE"
ANSWERS = {"q": "plumbers", "location": "Omaha, NE"}
CARD = re.compile(r'<a class="[^"]*" aria-label="([^"]*)"(?: href="([^"]*)")?')
PLACE_ID = re.compile(r"!19s(ChIJ[A-Za-z0-9_-]+)")
END = "You've reached the end of the list."

Client = TestClient[Any, Any]


async def _client(**kw: Any) -> Client:
    client: Client = TestClient(TestServer(create_maps_app(**kw)))
    await client.start_server()
    return client


@pytest.fixture
async def maps() -> AsyncIterator[Client]:
    client = await _client()
    yield client
    await client.close()


async def answers(client: Client, **params: str) -> dict[str, Any]:
    response = await client.get("/_answers", params=params or ANSWERS)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def set_faults(client: Client, faults: dict[str, Any]) -> None:
    response = await client.post("/_faults", json=faults)
    assert response.status == 200, await response.text()


def card_place_ids(html: str) -> list[str]:
    """Place ids of the cards in the order they appear (None for a card without one)."""
    ids = []
    for _label, href in CARD.findall(html):
        match = PLACE_ID.search(href or "")
        if "/maps/place/" in (href or "") or not href:
            ids.append(match.group(1) if match else "")
    return ids


async def walk_feed(client: Client, first_page: str, query: str, location: str) -> tuple[list[str], str]:
    """What scrolling to the end yields: every card's place id in order, and the whole feed HTML."""
    html = first_page
    offset = len(card_place_ids(first_page))
    for _ in range(100):
        page = await (
            await client.get("/maps/_feed", params={"q": query, "location": location, "offset": str(offset)})
        ).json()
        html += page["html"]
        if page["end"] or page["next_offset"] == offset:
            break
        offset = page["next_offset"]
    return card_place_ids(html), html


def rel(url: str) -> str:
    """A replica URL as a path on it (the test client takes paths)."""
    return re.sub(r"^http://[^/]+", "", url)


def portable(body: dict[str, Any]) -> dict[str, Any]:
    """An /_answers body without the replica's own address (each test server has its own port)."""
    return {**body, "answers": [{**x, "maps_url": rel(x["maps_url"])} for x in body["answers"]]}


def place_id_of_cid(cid: str) -> str:
    high, low = (int(part, 16) for part in cid.split(":"))
    raw = b"\x0a\x12\x09" + high.to_bytes(8, "little") + b"\x11" + low.to_bytes(8, "little")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- answer sets ---------------------------------------------------------------------------------


async def test_answer_sets_are_deterministic_across_instances_and_depend_on_every_input() -> None:
    first, second, other_seed = await _client(), await _client(), await _client(seed=7)
    try:
        a = await answers(first)
        assert portable(a) == portable(await answers(second))
        assert [x["place_id"] for x in a["answers"]] != [
            x["place_id"] for x in (await answers(other_seed))["answers"]
        ]
        elsewhere = await answers(first, q="plumbers", location="Austin, TX")
        assert {x["place_id"] for x in elsewhere["answers"]}.isdisjoint({x["place_id"] for x in a["answers"]})
        assert all(", Austin, TX 787" in x["full_address"] for x in elsewhere["answers"] if x["full_address"])
        assert all(x["phone"].startswith("(512) ") for x in elsewhere["answers"] if x["phone"])
    finally:
        for client in (first, second, other_seed):
            await client.close()


async def test_answer_set_has_google_sized_realistic_businesses(maps: Client) -> None:
    found = (await answers(maps))["answers"]
    assert len(found) == 120
    ids = [x["place_id"] for x in found]
    assert len(set(ids)) == 120
    for x in found:
        assert re.fullmatch(r"ChIJ[A-Za-z0-9_-]{23}", x["place_id"])
        assert re.fullmatch(r"0x[0-9a-f]+:0x[0-9a-f]+", x["cid"])
        assert place_id_of_cid(x["cid"]) == x["place_id"]  # as Google's ids encode the cid
        assert abs(x["latitude"] - 41.2565) < 0.2
        assert abs(x["longitude"] + 95.9345) < 0.2
        assert x["rating"] is None or 1.0 <= x["rating"] <= 5.0
        assert x["phone"] is None or re.fullmatch(r"\(402\) 555-01\d\d", x["phone"])
        assert x["website"] is None or re.fullmatch(r"http://[a-z0-9-]+\.example/", x["website"])
    without_site = sum(x["website"] is None for x in found)
    assert 25 <= without_site <= 55  # about a third
    assert any(x["phone"] is None for x in found)
    assert any(x["address"] is None and x["full_address"] is None for x in found)  # service-area
    assert any((x["review_count"] or 0) > 1000 for x in found)
    names = [x["name"] for x in found]
    assert len(set(names)) < len(names)  # chain branches share a name, never a place id


async def test_smaller_limits_and_rare_queries_end_early() -> None:
    small = await _client(max_results=30)
    full = await _client()
    try:
        prefix = [x["place_id"] for x in (await answers(small))["answers"]]
        whole = [x["place_id"] for x in (await answers(full))["answers"]]
        assert prefix == whole[:30]
        rare = (await answers(full, q="rare orchid growers", location="Omaha, NE"))["answers"]
        assert len(rare) == 7
        # The same text as one search string splits on its last " in ".
        assert (await answers(full, q="rare orchid growers in Omaha, NE"))["answers"] == rare
    finally:
        await small.close()
        await full.close()


# -- feed and pages ------------------------------------------------------------------------------


async def test_feed_pages_until_the_end_marker_in_answer_order(maps: Client) -> None:
    expected = [x["place_id"] for x in (await answers(maps))["answers"]]
    response = await maps.get(SEARCH, params={"hl": "en"})
    assert response.status == 200
    page = await response.text()
    assert 'role="feed"' in page
    assert END not in page
    assert card_place_ids(page) == expected[:20]
    assert "http" not in re.sub(
        r'(href|src)="http://127\.0\.0\.1:\d+[^"]*"|http://[a-z0-9-]+\.example/',
        "",
        page.split("<script>")[0].split("<body", 1)[1],
    ), "no external URL in the page"
    walked, html = await walk_feed(maps, page, "plumbers", "Omaha, NE")
    assert walked == expected
    assert (
        html.count(END) == 1
    )
    assert (
        html.rstrip().endswith("</div>")
    )
    assert (
        html.index(END) > html.rindex("hfpxzc")
    )


async def test_rare_query_fits_the_first_page_and_ends_there(maps: Client) -> None:
    page = await (await maps.get("/maps/search/rare+orchid+growers+in+Omaha,+NE")).text()
    assert len(card_place_ids(page)) == 7
    assert END in page


async def test_cards_show_what_answers_say(maps: Client) -> None:
    found = {x["place_id"]: x for x in (await answers(maps))["answers"]}
    _ids, html = await walk_feed(maps, await (await maps.get(SEARCH)).text(), "plumbers", "Omaha, NE")
    cards = html.split('<div class="TFQHme "></div>')[:-1]
    assert len(cards) == 120
    for card in cards:
        label, href = CARD.findall(card)[0]
        answer = found[PLACE_ID.findall(href)[0]]
        assert label.replace("&#x27;", "'").replace("&amp;", "&") == answer["name"]
        assert href == answer["maps_url"].replace("&", "&amp;")
        assert f"!3d{answer['latitude']}!4d{answer['longitude']}" in href
        if answer["rating"] is not None:
            count = f"{answer['review_count']:,}"
            assert f'aria-label="{answer["rating"]:.1f} stars {count} Reviews"' in card
        has_site = 'data-value="Website"' in card
        assert has_site == (answer["website"] is not None and not answer["compact"])
        if answer["phone"] and not answer["compact"]:
            assert answer["phone"] in card


async def test_single_place_searches_redirect_to_the_place_page(maps: Client) -> None:
    response = await maps.get("/maps/search/place:Joe's+Pizza+in+Omaha,+NE", allow_redirects=False)
    assert response.status == 302
    only = (await answers(maps, q="place:Joe's Pizza", location="Omaha, NE"))["answers"]
    assert len(only) == 1
    assert only[0]["name"] == "Joe's Pizza"
    assert PLACE_ID.findall(response.headers["Location"]) == [only[0]["place_id"]]

    served = (await answers(maps))["answers"]
    names = [x["name"] for x in served]
    unique = next(x for x in served if names.count(x["name"]) == 1)
    api = await maps.get(
        "/maps/search/", params={"api": "1", "query": f"{unique['name']} in Omaha, NE"}, allow_redirects=False
    )
    assert api.status == 302
    assert unique["place_id"] in api.headers["Location"]

    chain = next(name for name in names if names.count(name) > 1)
    listing = await maps.get(f"/maps/search/{chain} in Omaha, NE", allow_redirects=False)
    assert listing.status == 200  # two branches: a results page, not a guess


async def test_place_page_has_panel_and_state_matching_answers(maps: Client) -> None:
    for answer in (await answers(maps))["answers"][:15]:
        page = await (await maps.get(rel(answer["maps_url"]))).text()
        assert f'aria-label="{html.escape(answer["name"])}" role="main"' in page
        assert ('data-item-id="address"' in page) == (answer["full_address"] is not None)
        assert ('data-item-id="authority"' in page) == (answer["website"] is not None)
        if answer["phone_e164"]:
            assert f'data-item-id="phone:tel:{answer["phone_e164"]}"' in page
        state = re.search(r"window\.APP_INITIALIZATION_STATE=(.*?);window\.APP_FLAGS", page)
        assert state is not None
        payload = json.loads(state.group(1))[3][6]
        assert payload.startswith(")]}'\n")
        place = json.loads(payload[5:])[6]
        assert (place[78], place[10], place[11]) == (answer["place_id"], answer["cid"], answer["name"])
        assert place[9][2:] == [answer["latitude"], answer["longitude"]]
    missing = await maps.get("/maps/place/Nobody/data=!4m7!3m6!1s0x1:0x2!19sChIJAAAAAAAAAAAAAAAAAAAAAAA")
    assert missing.status == 404


async def test_language_parameter_localizes_labels(maps: Client) -> None:
    page = await (await maps.get("/maps/search/rare+orchid+growers+in+Omaha,+NE", params={"hl": "de"})).text()
    assert "Das Ende der Liste ist erreicht." in page
    assert END not in page
    assert re.search(r'aria-label="\d,\d Sterne [\d.]+ Rezensionen"', page)
    hours = [
        x["hours"] for x in (await answers(maps, q="plumbers", location="Omaha, NE", hl="de"))["answers"]
    ]
    assert any(h and h[0][0] == "Montag" for h in hours)


# -- faults --------------------------------------------------------------------------------------


async def test_faults_are_listed_replaced_and_cleared(maps: Client) -> None:
    listed = await (await maps.get("/_faults")).json()
    assert set(listed["available"]) >= {
        "consent",
        "sorry",
        "slow_ms",
        "hang",
        "feed_stops_after",
        "malformed_cards",
        "empty_feed",
    }
    await set_faults(maps, {"sorry": 2, "slow_ms": 5})
    assert (await (await maps.get("/_faults")).json())["active"] == {"sorry": 2, "slow_ms": 5}
    bad = await maps.post("/_faults", json={"sorry": "often", "nonsense": 1})
    assert bad.status == 400
    error = (await bad.json())["error"]
    assert "sorry" in error
    assert "nonsense" in error
    assert (await (await maps.get("/_faults")).json())["active"] == {"sorry": 2, "slow_ms": 5}
    await set_faults(maps, {})
    assert (await (await maps.get("/_faults")).json())["active"] == {}
    assert (await maps.post("/_faults", data=b"{not json")).status == 400


async def test_consent_interstitial_is_passed_by_accepting(maps: Client) -> None:
    await set_faults(maps, {"consent": True})
    first = await maps.get(SEARCH, allow_redirects=False)
    assert first.status == 302
    assert first.headers["Location"].startswith("/consent?")
    page = await (await maps.get(first.headers["Location"])).text()
    assert 'aria-label="Accept all"' in page
    assert 'aria-label="Reject all"' in page
    accepted = await maps.post(
        "/consent/save", data={"continue": SEARCH, "set_eom": "false"}, allow_redirects=False
    )
    assert accepted.status == 303
    assert accepted.headers["Location"] == SEARCH
    assert 'role="feed"' in await (await maps.get(SEARCH)).text()  # the cookie now lets it through
    await set_faults(maps, {})


async def test_consent_loop_never_sets_the_cookie() -> None:
    client = await _client()
    try:
        await set_faults(client, {"consent": "loop"})
        await client.post("/consent/save", data={"continue": SEARCH, "set_eom": "false"})
        again = await client.get(SEARCH, allow_redirects=False)
        assert again.status == 302
        assert again.headers["Location"].startswith("/consent?")
        escaped = await client.post(
            "/consent/save", data={"continue": "https://evil.example/x"}, allow_redirects=False
        )
        assert escaped.headers["Location"] == "/x"  # never an open redirect
    finally:
        await client.close()


async def test_sorry_blocks_navigations_and_feed_then_runs_out(maps: Client) -> None:
    await set_faults(maps, {"sorry": 2})
    blocked = await maps.get(SEARCH)
    assert blocked.status == 429
    assert "/sorry/index" in str(blocked.url)
    body = await blocked.text()
    assert 'id="captcha-form"' in body
    assert "unusual traffic" in body
    feed = await maps.get("/maps/_feed", params={"q": "plumbers", "location": "Omaha, NE", "offset": "20"})
    assert feed.status == 429
    assert (await maps.get(SEARCH)).status == 200  # the two blocked requests used the fault up
    await set_faults(maps, {"sorry": True})
    for _ in range(3):
        assert (await maps.get(SEARCH)).status == 429
    await set_faults(maps, {})
    assert (await maps.get(SEARCH)).status == 200


async def test_slow_responses_are_delayed(maps: Client) -> None:
    await set_faults(maps, {"slow_ms": 300})
    started = time.monotonic()
    assert (await maps.get(SEARCH)).status == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await maps.get("/_stats")  # control routes answer at once, so tests can always reach them
    assert time.monotonic() - started < 0.3


async def test_hang_never_answers_until_cleared(maps: Client) -> None:
    await set_faults(maps, {"hang": True})
    with pytest.raises(asyncio.TimeoutError):
        await maps.get(SEARCH, timeout=aiohttp.ClientTimeout(total=0.5))
    await set_faults(maps, {"hang": 1})
    with pytest.raises(asyncio.TimeoutError):
        await maps.get(SEARCH, timeout=aiohttp.ClientTimeout(total=0.5))
    assert (await maps.get(SEARCH)).status == 200  # one hang used up the count


async def test_a_hung_response_ends_when_the_replica_shuts_down() -> None:
    async with aiohttp.ClientSession() as session:
        async with serve_maps_replica() as base:
            await session.post(f"{base}/_faults", json={"hang": True})
            hung = asyncio.ensure_future(session.get(f"{base}{SEARCH}"))

            async def reached() -> bool:
                stats: dict[str, Any] = await (await session.get(f"{base}/_stats")).json()
                return bool(stats.get("requests", {}).get("search") == 1)

            await eventually(reached, 10, "the hung request reaching the replica")
            started = time.monotonic()
        (outcome,) = await asyncio.gather(hung, return_exceptions=True)
        # Either the 503 the released handler sends or the connection closing with the server.
        if isinstance(outcome, aiohttp.ClientResponse):
            assert outcome.status == 503
        else:
            assert isinstance(outcome, aiohttp.ClientError), outcome
        assert time.monotonic() - started < 5


async def test_feed_stops_early_without_end_marker(maps: Client) -> None:
    await set_faults(maps, {"feed_stops_after": 45})
    page = await (await maps.get(SEARCH)).text()
    walked, html = await walk_feed(maps, page, "plumbers", "Omaha, NE")
    expected = [x["place_id"] for x in (await answers(maps))["answers"]]
    assert walked == expected[:45]
    assert END not in html
    await set_faults(maps, {"feed_stops_after": 5})
    assert len(card_place_ids(await (await maps.get(SEARCH)).text())) == 5


async def test_malformed_cards_are_broken_and_listed(maps: Client) -> None:
    await set_faults(maps, {"malformed_cards": 6})
    body = await answers(maps)
    broken = body["malformed"]
    assert len(broken) == 6
    page = await (await maps.get(SEARCH)).text()
    walked, _html = await walk_feed(maps, page, "plumbers", "Omaha, NE")
    good = [x["place_id"] for x in body["answers"] if x["place_id"] not in broken]
    assert [i for i in walked if i] == good
    assert walked.count("") == 6
    await set_faults(maps, {"malformed_cards": 0.25})
    share = len((await answers(maps))["malformed"])
    assert 15 <= share <= 45


async def test_empty_feed_is_a_feed_without_cards(maps: Client) -> None:
    await set_faults(maps, {"empty_feed": True})
    page = await (await maps.get(SEARCH)).text()
    assert 'role="feed"' in page
    assert card_place_ids(page) == []
    assert END not in page
    more = await (await maps.get("/maps/_feed", params={"q": "plumbers", "location": "Omaha, NE"})).json()
    assert more["html"] == ""
    assert more["end"] is False


async def test_class_churn_renames_classes_but_not_stable_signals(maps: Client) -> None:
    before = await (await maps.get(SEARCH)).text()
    await set_faults(maps, {"class_churn": True})
    after = await (await maps.get(SEARCH)).text()
    assert "hfpxzc" in before
    assert "hfpxzc" not in after
    assert "Nv2PK" not in after
    assert card_place_ids(after) == card_place_ids(before)
    assert re.findall(r'aria-label="[^"]*"', after) == re.findall(r'aria-label="[^"]*"', before)


async def test_stats_count_navigations_and_reset(maps: Client) -> None:
    assert (await maps.post("/_stats/reset")).status == 200
    first = (await answers(maps))["answers"][0]
    await maps.get(SEARCH)
    await maps.get(rel(first["maps_url"]))
    await maps.get("/maps/_feed", params={"q": "plumbers", "location": "Omaha, NE", "offset": "20"})
    stats = await (await maps.get("/_stats")).json()
    assert stats["navigations"] == 2
    assert stats["requests"]["search"] == 1
    assert stats["requests"]["place"] == 1
    assert stats["requests"]["feed"] == 1
    await maps.post("/_stats/reset")
    assert (await (await maps.get("/_stats")).json())["navigations"] == 0


async def test_bad_requests_get_one_clear_error(maps: Client) -> None:
    assert (await maps.get("/maps/search/")).status == 400
    bad_offset = await maps.get("/maps/_feed", params={"q": "x", "offset": "ten"})
    assert bad_offset.status == 400
    assert "offset" in await bad_offset.text()
    assert (await maps.get("/_answers")).status == 400
    assert (await maps.get("/url", params={"q": "javascript:alert(1)"})).status == 400


async def test_wrapped_website_links_redirect_to_the_site(maps: Client) -> None:
    page = await (await maps.get(SEARCH, params={"hl": "en"})).text()
    _ids, html = await walk_feed(maps, page, "plumbers", "Omaha, NE")
    wrapped = re.findall(r'data-value="Website"[^>]*href="(http://127\.0\.0\.1:\d+/url\?q=[^"]+)"', html)
    assert wrapped, "some website links go through /url?q="
    target = wrapped[0].replace("&amp;", "&")
    response = await maps.get(target.split(str(maps.make_url("")).rstrip("/"), 1)[1], allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].endswith(".example/")


async def test_run_maps_replica_prints_its_url_and_serves(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.ensure_future(run_maps_replica("127.0.0.1", 0, 3))
    try:
        printed = ""

        def url_printed() -> bool:
            nonlocal printed
            assert not task.done(), "the replica stopped before printing its URL"
            printed += capsys.readouterr().out
            return bool(printed.strip())

        await eventually(url_printed, 10, "a base URL printed", every=0.01)
        base = printed.strip().splitlines()[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        async with aiohttp.ClientSession() as session:
            assert (await session.get(f"{base}/_answers", params=ANSWERS)).status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- the project's parser reads the replica's pages as the answer set ----------------------------

FIELDS = (
    "place_id",
    "cid",
    "name",
    "category",
    "address",
    "phone",
    "website",
    "rating",
    "review_count",
    "latitude",
    "longitude",
    "maps_url",
)


@pytest.mark.parametrize("faults", [{}, {"class_churn": True}, {"malformed_cards": 5}])
async def test_parser_reads_the_feed_as_the_answer_set(faults: dict[str, Any]) -> None:
    client = await _client(page_size=120)
    try:
        await set_faults(client, faults)
        body = await answers(client)
        broken = set(body.get("malformed", []))
        feed = parser.parse_feed(await (await client.get(SEARCH)).text())
        expected = [x for x in body["answers"] if x["place_id"] not in broken]
        assert feed.end_of_list
        assert feed.malformed == len(broken)
        assert [x.place_id for x in feed.listings] == [x["place_id"] for x in expected]
        for listing, answer in zip(feed.listings, expected, strict=True):
            got = listing.to_dict()
            want = {k: answer[k] for k in FIELDS}
            if answer["compact"]:  # a compact card shows neither phone nor website
                want.update(phone=None, website=None)
            assert {k: got[k] for k in FIELDS} == want
    finally:
        await client.close()


async def test_parser_reads_place_pages_as_the_answer_set(maps: Client) -> None:
    for answer in (await answers(maps))["answers"][:30]:
        page = await (await maps.get(rel(answer["maps_url"]))).text()
        state = re.search(r"window\.APP_INITIALIZATION_STATE=(.*?);window\.APP_FLAGS", page)
        assert state is not None
        want = {k: answer[k] for k in FIELDS if k != "maps_url"}
        want["address"] = answer["full_address"]
        for listing in (
            parser.parse_place_panel(page, answer["maps_url"]),
            parser.parse_place_state(json.loads(state.group(1))[3][6]),
        ):
            assert listing is not None
            got = listing.to_dict()
            assert {k: got[k] for k in want} == want
            assert got["plus_code"] == answer["plus_code"]
            assert got["hours"] == answer["hours"]


@pytest.mark.browser
async def test_feed_grows_in_a_real_browser_when_scrolled() -> None:
    from playwright.async_api import async_playwright

    from leadlawk_daemon.maps.browser import resolve_executable

    async with serve_maps_replica() as base, async_playwright() as pw:
        chromium = resolve_executable(None, pw.chromium.executable_path)
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{base}{SEARCH}")
            cards = page.locator('div[role="feed"] a[href*="/maps/place/"]')
            seen = [await cards.count()]
            while not await page.get_by_text(END).count():
                assert len(seen) < 12, f"the feed never ended: {seen}"
                await page.eval_on_selector('div[role="feed"]', "f => { f.scrollTop = f.scrollHeight; }")
                await page.wait_for_function(
                    "([n, end]) => document.querySelectorAll('div[role=feed] a[href*=\"/maps/place/\"]')"
                    ".length > n || document.body.innerText.includes(end)",
                    arg=[seen[-1], END],
                    timeout=10_000,
                )
                seen.append(await cards.count())
            async with aiohttp.ClientSession() as session:
                expected = (await (await session.get(f"{base}/_answers", params=ANSWERS)).json())["answers"]
            hrefs = await cards.evaluate_all("els => els.map(e => e.getAttribute('href'))")
            assert hrefs == [x["maps_url"] for x in expected]
            assert seen[0] == 20
            assert seen[-1] == 120
        finally:
            await browser.close()
