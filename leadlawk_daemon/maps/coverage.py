"""Area coverage past Google's 120-result cap: an adaptive quadtree of map viewports.

The plan is a pure, resumable state machine; it makes no request. Its owner asks for the next
cell, searches that cell's viewport, and records what the list held:

* a list that ended before the cap holds every business of the viewport, so the cell is done;
* a capped list hides some, so the cell is split into four quadrants, each searched in turn,
  down to ``min_cell_m``; a capped cell that small is done as "saturated" and counted;
* quadrants outside the area (a circle or polygon leaves corners of its box empty) are dropped
  without a search.

Every business is kept once (by ``place_id``), only if its coordinates are inside the area
(Google also lists places just outside the viewport), and at most ``limit`` in all. Dense
downtowns get small cells, empty suburbs one search each: that is the whole saving over a fixed
grid. The root cells cut the area's box into viewport-shaped cells, so every quadrant keeps the
viewport's shape and fills its map exactly at one zoom level more.

``to_json``/``from_json`` carry the whole state (pending cells, counters and, unless the owner
keeps them elsewhere, the place ids kept), so a job resumed after a crash never searches a
finished cell again. A job's store already holds its place ids: it persists the plan without
them and gives them back on resume, which keeps a 10,000-business job's progress small.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from leadlawk_daemon.maps.area import Area, Bbox, Viewport, area_to_dict, grid_shape, parse_area, viewport_covering

__all__ = ["DEFAULT_MIN_CELL_M", "GOOGLE_RESULTS_CAP", "Cell", "CoveragePlan", "Located", "PlanProgress"]

GOOGLE_RESULTS_CAP = 120
"""Where one search's results list ends on Google Maps."""

DEFAULT_MIN_CELL_M = 200.0
"""A cell is not split below this on its shorter side (see ``maps.min_cell_m`` in the config)."""

_STATE_VERSION = 1


class Located(Protocol):
    """A search result as the plan needs it (``Listing`` is one)."""

    @property
    def place_id(self) -> str | None: ...

    @property
    def latitude(self) -> float | None: ...

    @property
    def longitude(self) -> float | None: ...


L = TypeVar("L", bound=Located)


@dataclass(frozen=True, slots=True)
class Cell:
    """One viewport to search: ``key`` names it (its box, rounded) for statistics and resumption."""

    bbox: Bbox
    depth: int

    @property
    def key(self) -> str:
        return ",".join(f"{v:.7f}" for v in self.bbox.to_list())

    def to_json(self) -> list[float]:
        return [*self.bbox.to_list(), self.depth]

    @classmethod
    def from_json(cls, raw: Any) -> Cell:
        s, w, n, e, depth = raw
        return cls(Bbox(float(s), float(w), float(n), float(e)), int(depth))


@dataclass(frozen=True, slots=True)
class PlanProgress:
    cells_done: int
    cells_pending: int
    cells_split: int
    cells_saturated: int
    found: int
    outside: int
    duplicates: int


class CoveragePlan:
    """Which viewports to search for one area, and what has been found there so far."""

    def __init__(
        self,
        area: Area,
        *,
        width_px: int,
        height_px: int,
        limit: int,
        cap: int = GOOGLE_RESULTS_CAP,
        min_cell_m: float = DEFAULT_MIN_CELL_M,
    ) -> None:
        if width_px < 1 or height_px < 1:
            raise ValueError(f"viewport must be at least 1x1 px, got {width_px}x{height_px}")
        if limit < 1 or cap < 1 or min_cell_m <= 0:
            raise ValueError(f"limit, cap and min_cell_m must be positive (got {limit}, {cap}, {min_cell_m})")
        self.area = area
        self.width_px = width_px
        self.height_px = height_px
        self.limit = limit
        self.cap = cap
        self.min_cell_m = min_cell_m
        self.pending: deque[Cell] = deque()
        self.seen: set[str] = set()
        self.cells_done = 0
        self.cells_split = 0
        self.cells_saturated = 0
        self.outside = 0
        self.duplicates = 0
        box = area.bbox
        rows, cols = grid_shape(box, width_px, height_px)
        self._push(Cell(cell, 0) for cell in box.grid(rows, cols))

    # -- the loop's three questions ---------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return not self.pending or len(self.seen) >= self.limit

    def next_cell(self) -> Cell | None:
        """The cell to search next (it stays pending until recorded), or None when finished."""
        return None if self.finished else self.pending[0]

    def viewport(self, cell: Cell) -> Viewport:
        return viewport_covering(cell.bbox, self.width_px, self.height_px)

    def record(self, cell: Cell, results: Iterable[L], *, capped: bool | None = None) -> list[L]:
        """Take one search's list for ``cell``: the new in-area results, at most up to the limit.

        ``capped`` defaults to "the list held ``cap`` results or more"; a caller that knows the
        list was cut short for another reason (the job's own limit) says so.
        """
        if not self.pending or self.pending[0] != cell:
            raise ValueError(f"cell {cell.key} is not the next pending cell")
        listed = list(results)
        kept: list[L] = []
        for result in listed:
            place_id, lat, lng = result.place_id, result.latitude, result.longitude
            if place_id is None or lat is None or lng is None:
                continue
            if place_id in self.seen:
                self.duplicates += 1
                continue
            if not self.area.contains(lat, lng):
                self.outside += 1
                continue
            if len(self.seen) >= self.limit:
                break
            self.seen.add(place_id)
            kept.append(result)
        self.pending.popleft()
        self.cells_done += 1
        if capped is None:
            capped = len(listed) >= self.cap
        if capped and len(self.seen) < self.limit:
            if self._splittable(cell):
                self.cells_split += 1
                self._push(Cell(q, cell.depth + 1) for q in cell.bbox.quadrants())
            else:
                self.cells_saturated += 1
        return kept

    def progress(self) -> PlanProgress:
        return PlanProgress(
            cells_done=self.cells_done,
            cells_pending=0 if self.finished else len(self.pending),
            cells_split=self.cells_split,
            cells_saturated=self.cells_saturated,
            found=len(self.seen),
            outside=self.outside,
            duplicates=self.duplicates,
        )

    # -- internals -------------------------------------------------------------------------------

    def _splittable(self, cell: Cell) -> bool:
        box = cell.bbox
        return min(box.width_km, box.height_km) * 1000 / 2 >= self.min_cell_m

    def _push(self, cells: Iterable[Cell]) -> None:
        self.pending.extend(c for c in cells if self.area.overlaps(c.bbox))

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self, *, with_seen: bool = True) -> dict[str, Any]:
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "area": area_to_dict(self.area),
            "viewport_px": [self.width_px, self.height_px],
            "limit": self.limit,
            "cap": self.cap,
            "min_cell_m": self.min_cell_m,
            "pending": [c.to_json() for c in self.pending],
            "counters": {
                "cells_done": self.cells_done,
                "cells_split": self.cells_split,
                "cells_saturated": self.cells_saturated,
                "outside": self.outside,
                "duplicates": self.duplicates,
            },
        }
        if with_seen:
            state["seen"] = sorted(self.seen)
        return state

    @classmethod
    def from_json(cls, state: Mapping[str, Any], seen: Iterable[str] | None = None) -> CoveragePlan:
        """A plan exactly where ``to_json`` left it, with ``seen`` as its kept place ids when the
        state was saved without them; raises ``ValueError`` for a state it cannot use."""
        try:
            if state.get("version") != _STATE_VERSION:
                raise ValueError(f"unknown coverage state version {state.get('version')!r}")
            width, height = state["viewport_px"]
            plan = cls(
                parse_area(state["area"]),
                width_px=int(width),
                height_px=int(height),
                limit=int(state["limit"]),
                cap=int(state["cap"]),
                min_cell_m=float(state["min_cell_m"]),
            )
            plan.pending = deque(Cell.from_json(c) for c in state["pending"])
            plan.seen = {str(p) for p in (state["seen"] if seen is None else seen)}
            counters = state["counters"]
            plan.cells_done = int(counters["cells_done"])
            plan.cells_split = int(counters["cells_split"])
            plan.cells_saturated = int(counters["cells_saturated"])
            plan.outside = int(counters["outside"])
            plan.duplicates = int(counters["duplicates"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unusable coverage state: {exc}") from None
        return plan
