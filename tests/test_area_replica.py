"""The Maps replica's geography: populations over a locality's extent, viewport searches, ground truth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.maps.area import Bbox, Viewport, viewport_covering
from leadlawk_daemon.maps.extent import page_viewport
from leadlawk_daemon.maps.feed import parse_feed
from leadlawk_daemon.replicas.maps import create_maps_app
from leadlawk_daemon.replicas.maps_geography import OUTSIDE_BAND

Client = TestClient[Any, Any]
W, H = 1280, 720


@pytest.fixture
async def maps() -> AsyncIterator[Client]:
    client: Client = TestClient(TestServer(create_maps_app(viewport_px=(W, H))))
    await client.start_server()
    yield client
    await client.close()


async def get_json(client: Client, path: str, **params: str) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def area_truth(client: Client, q: str, location: str) -> dict[str, Any]:
    return await get_json(client, "/_answers", q=q, location=location, coverage="area")


async def test_a_big_city_query_has_more_than_1500_businesses_over_its_extent(maps: Client) -> None:
    truth = await area_truth(maps, "restaurants", "Chicago, IL")
    answers = truth["answers"]
    assert truth["count"] == len(answers) > 1500
    assert len({a["place_id"] for a in answers}) == len(answers)
    box = Bbox(*truth["area"]["bbox"])
    assert all(box.contains(a["latitude"], a["longitude"]) for a in answers)
    extent = Bbox(*truth["extent"])
    assert box.covers(extent)


async def test_density_is_a_dense_centre_sparse_edges_and_clusters(maps: Client) -> None:
    answers = (await area_truth(maps, "restaurants", "Chicago, IL"))["answers"]
    lat, lng = 41.8781, -87.6298
    centre = Bbox(lat - 0.02, lng - 0.025, lat + 0.02, lng + 0.025)
    edge = Bbox(lat - 0.12, lng - 0.15, lat - 0.08, lng - 0.10)  # the same size, a corner of the extent
    in_centre = sum(centre.contains(a["latitude"], a["longitude"]) for a in answers)
    in_edge = sum(edge.contains(a["latitude"], a["longitude"]) for a in answers)
    assert in_centre > 8 * max(in_edge, 1)
    # Clusters: some 1 km cells away from the centre hold far more than the thin spread's average.
    counts: dict[tuple[int, int], int] = {}
    for a in answers:
        if not centre.expanded(1.0).contains(a["latitude"], a["longitude"]):
            key = (int((a["latitude"] - lat) / 0.009), int((a["longitude"] - lng) / 0.012))
            counts[key] = counts.get(key, 0) + 1
    average = sum(counts.values()) / max(len(counts), 1)
    assert max(counts.values()) > 5 * average


async def test_the_plain_search_answer_set_is_unchanged_and_is_the_populations_best_ranked(maps: Client) -> None:
    first = (await get_json(maps, "/_answers", q="plumbers", location="Omaha, NE"))["answers"]
    assert len(first) == 120
    truth = await area_truth(maps, "plumbers", "Omaha, NE")
    by_id = {a["place_id"]: a for a in truth["answers"]}
    # Same businesses, same coordinates, websites and phones. The ``chain`` ground truth is the
    # answer set's own: a chain's first branch is marked once a later branch is in the same set,
    # and the area's population holds branches past the plain search's 120.
    def without_chain(answer: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in answer.items() if k != "chain"}

    assert [without_chain(by_id[a["place_id"]]) for a in first] == [without_chain(a) for a in first]
    for a in first:
        if a["chain"] is not None:
            assert by_id[a["place_id"]]["chain"] == a["chain"]


async def test_a_viewport_search_lists_its_best_ranked_and_some_just_outside_capped(maps: Client) -> None:
    truth = await area_truth(maps, "restaurants", "Chicago, IL")
    rank = {a["place_id"]: i for i, a in enumerate(truth["answers"])}  # the truth is in rank order
    viewport = viewport_covering(Bbox(41.86, -87.66, 41.90, -87.60), W, H)
    listed = (await get_json(maps, "/_answers", q="restaurants", location="Chicago, IL",
                             at=viewport.url_segment()[1:-1]))["answers"]
    assert len(listed) == 120
    band = viewport.bbox.expanded(OUTSIDE_BAND)
    assert all(band.contains(a["latitude"], a["longitude"]) for a in listed)
    assert any(not viewport.bbox.contains(a["latitude"], a["longitude"]) for a in listed)
    worst_listed = max(rank[a["place_id"]] for a in listed)
    unlisted_in_band = [a for a in truth["answers"] if band.contains(a["latitude"], a["longitude"])
                        and a["place_id"] not in {b["place_id"] for b in listed}]
    assert unlisted_in_band
    assert all(rank[a["place_id"]] > worst_listed for a in unlisted_in_band)


async def test_the_viewport_page_and_its_feed_list_what_answers_says_and_stats_count_it(maps: Client) -> None:
    viewport = viewport_covering(Bbox(41.74, -87.90, 41.76, -87.87), W, H)  # a sparse corner
    at = viewport.url_segment()[1:-1]
    expected = [a["place_id"] for a in (await get_json(maps, "/_answers", q="restaurants",
                                                        location="Chicago, IL", at=at))["answers"]]
    assert 0 < len(expected) < 120
    path = f"/maps/search/{quote('restaurants in Chicago, IL')}/{viewport.url_segment()}"
    for _ in range(2):
        response = await maps.get(path)
        assert response.status == 200
        html = await response.text()
    listed = [x.place_id for x in parse_feed(html).listings]
    offset = len(listed)
    while True:
        page = await get_json(maps, "/maps/_feed", q="restaurants", location="Chicago, IL", at=at,
                              offset=str(offset))
        listed += [x.place_id for x in parse_feed(page["html"]).listings]
        offset = page["next_offset"]
        if page["end"]:
            break
    assert listed == expected
    # The results page's map is the viewport searched.
    shown = page_viewport(html, str(response.url), W, H)
    assert shown is not None
    assert shown.zoom == pytest.approx(viewport.zoom, abs=1e-6)
    stats = await get_json(maps, "/_stats")
    assert stats["viewports"] == {viewport.url_segment(): 2}
    assert stats["navigations"] == 2


async def test_an_empty_viewport_still_lists_the_nearest_places_as_google_does(maps: Client) -> None:
    at = Viewport(41.60, -88.20, 16, W, H).url_segment()[1:-1]  # fields south-west of Chicago
    listed = (await get_json(maps, "/_answers", q="restaurants", at=at))["answers"]
    assert 0 < len(listed) <= 3


async def test_a_location_alone_opens_its_place_page_whose_map_covers_its_extent(maps: Client) -> None:
    response = await maps.get(f"/maps/search/{quote('Omaha, NE')}", allow_redirects=True)
    assert response.status == 200
    assert "/maps/place/Omaha" in response.url.path
    html = await response.text()
    shown = page_viewport(html, str(response.url), W, H)
    assert shown is not None
    truth = await area_truth(maps, "plumbers", "Omaha, NE")
    assert shown.bbox.covers(Bbox(*truth["extent"]))
    assert shown.bbox.to_list() == pytest.approx(truth["area"]["bbox"])


async def test_area_answers_take_a_bbox_and_reject_a_broken_one(maps: Client) -> None:
    box = "41.20,-96.00,41.30,-95.90"
    inside = await get_json(maps, "/_answers", q="plumbers", location="Omaha, NE", coverage="area", bbox=box)
    area = Bbox(41.20, -96.00, 41.30, -95.90)
    assert inside["answers"]
    assert all(area.contains(a["latitude"], a["longitude"]) for a in inside["answers"])
    bad = await maps.get("/_answers", params={"q": "plumbers", "coverage": "area", "bbox": "41.3,-96,41.2,-95.9"})
    assert bad.status == 400
    assert "south < north" in await bad.text()
    worse = await maps.get("/_answers", params={"q": "plumbers", "at": "north,pole,9"})
    assert worse.status == 400
