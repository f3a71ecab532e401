"""Area geometry: boxes, circles and polygons by coordinates; viewports and their zoom."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from leadlawk_daemon.maps.area import (
    Bbox,
    Circle,
    Polygon,
    Viewport,
    area_problems,
    area_to_dict,
    camera_viewport,
    grid_shape,
    haversine_km,
    parse_area,
    viewport_covering,
)
from leadlawk_daemon.maps.extent import page_viewport

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "maps"
OMAHA = Bbox(41.1365, -96.0845, 41.3765, -95.7845)


def test_a_bbox_contains_its_inside_and_not_its_outside() -> None:
    assert OMAHA.contains(41.2565, -95.9345)
    assert OMAHA.contains(41.1365, -96.0845)  # edges belong to the box
    assert not OMAHA.contains(41.40, -95.93)
    assert not OMAHA.contains(41.25, -95.70)


def test_a_bbox_measures_like_the_map() -> None:
    # 0.24° of latitude is 26.7 km anywhere; 0.30° of longitude at 41.26° N is 25.1 km.
    assert OMAHA.height_km == pytest.approx(26.69, abs=0.05)
    assert OMAHA.width_km == pytest.approx(25.08, abs=0.05)
    assert OMAHA.area_km2 == pytest.approx(26.69 * 25.08, rel=0.01)


def test_quadrants_tile_the_box_exactly() -> None:
    quads = OMAHA.quadrants()
    assert sum(q.area_km2 for q in quads) == pytest.approx(OMAHA.area_km2, rel=1e-9)
    assert all(OMAHA.covers(q) for q in quads)
    lat, lng = OMAHA.centre
    assert {(q.south, q.west) for q in quads} == {(lat, OMAHA.west), (lat, lng), (OMAHA.south, OMAHA.west),
                                                   (OMAHA.south, lng)}


def test_a_circle_contains_by_great_circle_distance() -> None:
    circle = Circle(41.2565, -95.9345, 5.0)
    assert circle.contains(41.2565, -95.9345)
    north_4km = 41.2565 + math.degrees(4 / 6371.0088)
    north_6km = 41.2565 + math.degrees(6 / 6371.0088)
    assert circle.contains(north_4km, -95.9345)
    assert not circle.contains(north_6km, -95.9345)
    assert circle.bbox.contains(north_4km, -95.9345)
    assert haversine_km(41.2565, -95.9345, north_4km, -95.9345) == pytest.approx(4.0, abs=1e-6)


def test_a_circle_overlaps_a_cell_only_when_they_share_ground() -> None:
    circle = Circle(41.2565, -95.9345, 2.0)
    assert circle.overlaps(Bbox(41.25, -95.94, 41.26, -95.93))  # holds the centre
    assert not circle.overlaps(Bbox(41.30, -95.94, 41.31, -95.93))  # 5 km north
    # The box's corner is past the radius although its sides are not: a box corner of the circle's own box.
    assert not circle.overlaps(Bbox(41.2565 + 0.0165, -95.9345 + 0.022, 41.3, -95.9))


def test_a_polygon_contains_by_ray_casting_including_a_concave_one() -> None:
    # An L shape: the notch (north-east) is outside.
    ell = Polygon(((41.0, -96.0), (41.2, -96.0), (41.2, -95.9), (41.1, -95.9), (41.1, -95.8), (41.0, -95.8)))
    assert ell.contains(41.05, -95.85)
    assert ell.contains(41.15, -95.95)
    assert not ell.contains(41.15, -95.85)
    assert not ell.contains(41.25, -95.95)
    assert not ell.overlaps(Bbox(41.12, -95.88, 41.18, -95.82))  # inside the notch
    assert ell.overlaps(Bbox(41.18, -95.92, 41.25, -95.85))  # straddles an edge, no vertex inside
    assert ell.area_km2 == pytest.approx(Bbox(41.0, -96.0, 41.2, -95.8).area_km2 * 3 / 4, rel=0.01)


def test_web_mercator_viewport_spans() -> None:
    # At zoom 0 the 256-px world spans 360° of longitude.
    world = Viewport(0.0, 0.0, 0.0, 256, 256).bbox
    assert world.east - world.west == pytest.approx(360.0)
    assert world.north == pytest.approx(85.0511, abs=1e-3)
    # Each zoom level halves the span.
    v15 = Viewport(41.2565, -95.9345, 15, 1280, 720)
    v16 = Viewport(41.2565, -95.9345, 16, 1280, 720)
    assert (v15.bbox.east - v15.bbox.west) == pytest.approx(2 * (v16.bbox.east - v16.bbox.west))
    assert v15.metres_per_px == pytest.approx(156543.03392 * math.cos(math.radians(41.2565)) / 2**15, rel=1e-9)


def test_the_viewport_covering_a_cell_shows_all_of_it_and_little_more() -> None:
    for box in (OMAHA, *OMAHA.quadrants(), Bbox(41.25, -95.94, 41.2505, -95.9390)):
        viewport = viewport_covering(box, 1280, 720)
        shown = viewport.bbox
        assert shown.covers(box)
        # Rounded down to 0.01 zoom: along the side that binds, at most 0.7 % is shown in excess.
        fill = max(
            (box.east - box.west) / (shown.east - shown.west),
            (box.north - box.south) / (shown.north - shown.south),
        )
        assert fill > 0.99


def test_the_camera_of_a_real_place_page_is_its_zoom_17_map() -> None:
    """The real Kipriakon place state: camera [[3281.37 m, lng, lat], …, [1024, 768], 13.1°]."""
    payload = json.loads((CORPUS / "place-state-kipriakon.json").read_text())
    viewport = camera_viewport(payload[4])
    assert viewport is not None
    assert (viewport.lat, viewport.lng) == pytest.approx((34.6705954, 33.0424567))
    assert viewport.zoom == pytest.approx(17.0, abs=0.01)  # Google opens a place at zoom 17
    assert (viewport.width_px, viewport.height_px) == (1024, 768)
    assert viewport.bbox.height_km == pytest.approx(0.753, abs=0.005)


def test_a_camera_round_trips_through_its_altitude() -> None:
    viewport = viewport_covering(OMAHA, 1280, 720)
    back = camera_viewport(viewport.camera())
    assert back is not None
    assert back.zoom == pytest.approx(viewport.zoom, abs=1e-6)
    assert back.bbox.covers(OMAHA.expanded(-1e-6))


@pytest.mark.parametrize("junk", [None, [], [[1, 2]], [[0, 1, 2], [0, 0, 0], [1024, 768], 13.1],
                                  [["x", 1, 2], [0], [1, 1], 13.1], [[10, 1, 2], [0], [0, 768], 13.1]])
def test_a_broken_camera_is_none(junk: object) -> None:
    assert camera_viewport(junk) is None


def test_grid_shape_cuts_a_long_box_into_viewport_shaped_cells() -> None:
    assert grid_shape(viewport_covering(OMAHA, 1280, 720).bbox, 1280, 720) == (1, 1)
    wide = Bbox(41.0, -97.0, 41.1, -95.0)  # 11 km × 168 km
    rows, cols = grid_shape(wide, 1280, 720)
    assert rows == 1
    assert cols == round(wide.width_km / wide.height_km / (16 / 9))


def test_areas_parse_and_round_trip() -> None:
    for spec in ({"bbox": [41.1, -96.1, 41.4, -95.8]}, {"center": [41.25, -95.93], "radius_km": 3.5},
                 {"polygon": [[41.1, -96.0], [41.3, -96.0], [41.2, -95.8]]}):
        area = parse_area(spec)
        assert area_to_dict(area) == spec


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"bbox": [41.4, -96.1, 41.1, -95.8]}, "area.bbox: south must be less than north (got south 41.4, north 41.1)"),
        ({"bbox": [41.1, -95.8, 41.4, -96.1]}, "area.bbox: west must be less than east"),
        ({"bbox": [41.1, -96.1, 41.4]}, "area.bbox: must be [south, west, north, east], four numbers"),
        ({"center": [41.25, -95.93], "radius_km": 0}, "area.radius_km: must be greater than 0 (got 0)"),
        ({"center": [41.25, -95.93], "radius_km": -2}, "area.radius_km: must be greater than 0 (got -2)"),
        ({"center": [141.25, -95.93], "radius_km": 2}, "area.center: must be [latitude, longitude]"),
        ({"center": [41.25, -95.93]}, "area.radius_km: is required with 'center'"),
        ({"polygon": [[41.1, -96.0], [41.3, -96.0]]}, "area.polygon: needs at least 3 points (got 2)"),
        ({"polygon": [[41.1, -96.0], [41.2, -96.0], [41.3, -96.0]]}, "area.polygon: its points enclose no area"),
        ({"bbox": [30.0, -100.0, 45.0, -80.0]}, "area: covers"),
        ({"bbox": [41.1, -96.1, 41.4, -95.8], "polygon": []}, "area: give exactly one of"),
        ("Omaha", "area: must be an object"),
    ],
)
def test_invalid_areas_are_named(spec: object, problem: str) -> None:
    area, problems = area_problems(spec, max_area_km2=10_000)
    assert area is None
    assert any(p.startswith(problem) for p in problems), problems


def test_the_maximum_area_names_the_setting() -> None:
    _, problems = area_problems({"center": [41.25, -95.93], "radius_km": 100}, max_area_km2=10_000)
    assert problems == ["area: covers 31,416 km², more than the configured maximum of 10,000 km² (maps.max_area_km2)"]


def test_a_page_states_its_map_in_the_place_payload_else_the_state_else_the_url() -> None:
    raw = (CORPUS / "place-state-kipriakon.json").read_text()
    # As Google embeds it: the payload as a ")]}'"-guarded JSON string at [3][6] of the state.
    state: list[Any] = [None, [[]], None, [None, None, None, None, None, None, ")]}'\n" + raw]]
    page = f"<script>window.APP_INITIALIZATION_STATE={json.dumps(state)};</script>"
    from_payload = page_viewport(page, "https://www.google.com/maps/place/x", 1280, 720)
    assert from_payload is not None
    assert from_payload.zoom == pytest.approx(17.0, abs=0.01)
    camera = viewport_covering(OMAHA, 1280, 720).camera()
    results = f"<script>window.APP_INITIALIZATION_STATE={json.dumps([camera, [[]], None, [None] * 7])};</script>"
    from_state = page_viewport(results, "https://www.google.com/maps/search/x", 1280, 720)
    assert from_state is not None
    assert from_state.bbox.covers(OMAHA.expanded(-1e-6))
    url = "https://www.google.com/maps/place/Omaha,+NE/@41.29,-96.07,11z/data=!3m1"
    from_url = page_viewport("<html></html>", url, 1280, 720)
    assert from_url == Viewport(41.29, -96.07, 11.0, 1280, 720)
    assert page_viewport("<html></html>", "https://www.google.com/maps/search/x", 1280, 720) is None
