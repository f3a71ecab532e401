"""The adaptive splitter, driven against a small synthetic "Google" that caps each list."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from leadlawk_daemon.maps.area import Area, Bbox, Circle, Polygon, Viewport, viewport_covering
from leadlawk_daemon.maps.coverage import Cell, CoveragePlan

BOX = Bbox(41.1365, -96.0845, 41.3765, -95.7845)
CAP = 120
W, H = 1280, 720


@dataclass(frozen=True)
class Place:
    place_id: str
    latitude: float
    longitude: float
    rank: int


def world(n: int = 1500, seed: int = 3) -> list[Place]:
    """A dense downtown, a cluster, a thin spread; ranks in random order as Google's relevance."""
    rng = random.Random(seed)
    places = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.5:
            lat, lng = rng.gauss(41.2565, 0.02), rng.gauss(-95.9345, 0.025)
        elif roll < 0.75:
            lat, lng = rng.gauss(41.18, 0.005), rng.gauss(-96.02, 0.006)
        else:
            lat, lng = rng.uniform(BOX.south, BOX.north), rng.uniform(BOX.west, BOX.east)
        lat = min(max(lat, BOX.south), BOX.north)
        lng = min(max(lng, BOX.west), BOX.east)
        places.append(Place(f"ChIJ{i:06d}", lat, lng, rng.randrange(1_000_000)))
    return sorted(places, key=lambda p: p.rank)


class FakeMaps:
    """Lists a viewport's best-ranked places and some just outside it, at most CAP."""

    def __init__(self, places: list[Place]) -> None:
        self.places = places
        self.searched: Counter[str] = Counter()

    def search(self, viewport: Viewport) -> list[Place]:
        self.searched[viewport.url_segment()] += 1
        box = viewport.bbox.expanded(0.1)
        return [p for p in self.places if box.contains(p.latitude, p.longitude)][:CAP]


def run(plan: CoveragePlan, maps: FakeMaps, max_cells: int | None = None) -> list[Place]:
    kept: list[Place] = []
    done = 0
    while (cell := plan.next_cell()) is not None and (max_cells is None or done < max_cells):
        kept += plan.record(cell, maps.search(plan.viewport(cell)))
        done += 1
    return kept


def plan_for(area: Area, limit: int = 10_000, min_cell_m: float = 200.0) -> CoveragePlan:
    return CoveragePlan(area, width_px=W, height_px=H, limit=limit, cap=CAP, min_cell_m=min_cell_m)


def inside(places: list[Place], area: Area) -> set[str]:
    return {p.place_id for p in places if area.contains(p.latitude, p.longitude)}


def test_a_list_that_ends_before_the_cap_is_one_search() -> None:
    places = world(90)
    maps = FakeMaps(places)
    one_map = viewport_covering(BOX, W, H).bbox
    plan = plan_for(one_map)
    kept = run(plan, maps)
    assert sum(maps.searched.values()) == 1
    assert {p.place_id for p in kept} == inside(places, one_map)
    assert plan.progress().cells_split == 0


@pytest.mark.parametrize(
    "area",
    [
        BOX,
        Bbox(41.20, -96.00, 41.30, -95.88),
        Circle(41.2565, -95.9345, 6.0),
        Polygon(((41.15, -96.05), (41.33, -95.98), (41.30, -95.80), (41.20, -95.85))),
    ],
    ids=["locality", "bbox", "circle", "polygon"],
)
def test_every_place_in_the_area_is_found_once_and_nothing_outside(area: Area) -> None:
    places = world()
    maps = FakeMaps(places)
    kept = run(plan_for(area), maps)
    ids = [p.place_id for p in kept]
    assert len(ids) == len(set(ids)), "a place was kept twice"
    assert set(ids) == inside(places, area)
    assert max(maps.searched.values()) == 1, "a viewport was searched twice"


def test_only_capped_cells_are_split_so_sparse_ground_costs_one_search() -> None:
    places = world()
    maps = FakeMaps(places)
    plan = plan_for(BOX)
    splits: list[Cell] = []
    while (cell := plan.next_cell()) is not None:
        listed = maps.search(plan.viewport(cell))
        before = plan.progress().cells_split
        plan.record(cell, listed)
        if plan.progress().cells_split > before:
            splits.append(cell)
            assert len(listed) == CAP
        else:
            assert len(listed) < CAP
    # The dense downtown is split deeper than the thin edges.
    depth_at = {c.depth for c in splits if c.bbox.contains(41.2565, -95.9345)}
    corner = {c.depth for c in splits if c.bbox.contains(BOX.south + 0.001, BOX.east - 0.001)}
    assert max(depth_at) > max(corner, default=-1) + 1
    # Far fewer searches than a 1 km grid over the same box (≈ 27 × 25 cells).
    assert plan.cells_done < 0.3 * 27 * 25


def test_duplicates_across_overlapping_lists_are_dropped_and_counted() -> None:
    places = world()
    plan = plan_for(BOX)
    kept = run(plan, FakeMaps(places))
    assert plan.duplicates > 0  # neighbouring viewports' lists overlap (the band outside each)
    assert len(kept) == len({p.place_id for p in kept}) == plan.progress().found


def test_the_limit_is_honoured_and_ends_the_plan() -> None:
    places = world()
    maps = FakeMaps(places)
    plan = plan_for(BOX, limit=250)
    kept = run(plan, maps)
    assert len(kept) == 250
    assert plan.finished
    assert plan.next_cell() is None
    assert plan.progress().cells_pending == 0


def test_a_resumed_plan_searches_no_finished_cell_again_and_ends_the_same() -> None:
    places = world()
    whole_maps = FakeMaps(places)
    whole = run(plan_for(BOX), whole_maps)

    maps = FakeMaps(places)
    plan = plan_for(BOX)
    first = run(plan, maps, max_cells=9)
    state = json.loads(json.dumps(plan.to_json()))  # as the job's progress stores it
    searched_before = set(maps.searched)
    resumed = CoveragePlan.from_json(state)
    assert resumed.progress() == plan.progress()
    second = run(resumed, maps)
    assert max(maps.searched.values()) == 1, "a finished cell was searched again"
    assert searched_before < set(maps.searched)
    assert {p.place_id for p in first + second} == {p.place_id for p in whole}
    assert len(first) + len(second) == len(whole)
    assert sum(maps.searched.values()) == sum(whole_maps.searched.values())


def test_a_cell_capped_at_the_minimum_size_is_saturated_not_split_forever() -> None:
    # 300 places in one building: no split can separate them.
    crowd = [Place(f"ChIJm{i:05d}", 41.2601, -95.9301, i) for i in range(300)]
    maps = FakeMaps(crowd)
    plan = plan_for(BOX, min_cell_m=200.0)
    searched: list[Cell] = []
    while (cell := plan.next_cell()) is not None:
        searched.append(cell)
        plan.record(cell, maps.search(plan.viewport(cell)))
    progress = plan.progress()
    assert 1 <= progress.cells_saturated <= 4
    assert progress.found == CAP
    smallest = min(min(c.bbox.width_km, c.bbox.height_km) for c in searched)
    assert 0.2 <= smallest < 0.4
    # About eight levels from 27 km to 200 m, a few cells each: the crowd sits in the band each
    # neighbouring viewport lists too, so neighbours are capped and split alongside.
    assert progress.cells_done <= 2 + 4 * 4 * 8


def test_record_refuses_a_cell_that_is_not_next() -> None:
    plan = plan_for(BOX)
    with pytest.raises(ValueError, match="not the next pending cell"):
        plan.record(Cell(Bbox(41.2, -96.0, 41.3, -95.9), 3), [])


def test_a_broken_state_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="unusable coverage state"):
        CoveragePlan.from_json({"version": 1, "area": {"bbox": [1, 2]}})


def test_a_plan_saved_without_its_place_ids_resumes_with_the_stores() -> None:
    places = world()
    maps = FakeMaps(places)
    plan = plan_for(BOX)
    first = run(plan, maps, max_cells=5)
    state = plan.to_json(with_seen=False)
    assert "seen" not in state
    resumed = CoveragePlan.from_json(json.loads(json.dumps(state)), seen=[p.place_id for p in first])
    second = run(resumed, maps)
    assert max(maps.searched.values()) == 1
    assert {p.place_id for p in first + second} == inside(places, BOX)
    assert len(first) + len(second) == len(inside(places, BOX))
