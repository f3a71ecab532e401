"""Geometry of an area search: the area (bbox, circle, polygon), map viewports and their zoom.

Google Maps draws Web Mercator tiles of 256 px: at zoom ``z`` the world is ``256 * 2**z`` px
wide, so a viewport of ``width`` × ``height`` px centred on (lat, lng) at zoom ``z`` is fixed by
those numbers alone, and the zoom that makes a viewport cover a cell follows from the cell's
size. Google accepts fractional zooms in ``/@lat,lng,zoomz``. Its pages describe the camera
as ``[[altitude_m, lng, lat], [heading…], [width, height], fov_degrees]``; the altitude and the
vertical field of view give the metres shown per pixel, hence the zoom.

Distances use a sphere of Earth's mean radius: an area of a city's size is off by well under
1 % from the ellipsoid, which no search here can notice. Areas never cross the antimeridian.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EARTH_RADIUS_KM",
    "Area",
    "Bbox",
    "Circle",
    "Polygon",
    "Viewport",
    "area_problems",
    "area_to_dict",
    "camera_viewport",
    "grid_shape",
    "haversine_km",
    "parse_area",
    "viewport_covering",
]

EARTH_RADIUS_KM = 6371.0088
_TILE = 256
# Metres per pixel at the equator at zoom 0 (Web Mercator, 256-px tiles).
_EQUATOR_M_PER_PX = 2 * math.pi * 6378137.0 / _TILE
_MAX_LAT = 85.05112878  # Web Mercator's edge
_KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


@dataclass(frozen=True, slots=True)
class Bbox:
    south: float
    west: float
    north: float
    east: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.south + self.north) / 2, (self.west + self.east) / 2

    @property
    def height_km(self) -> float:
        return (self.north - self.south) * _KM_PER_DEG

    @property
    def width_km(self) -> float:
        # Measured at the middle latitude: the mean width of the box.
        return (self.east - self.west) * _KM_PER_DEG * math.cos(math.radians(self.centre[0]))

    @property
    def area_km2(self) -> float:
        # Exact on the sphere: R² · Δλ · (sin φn − sin φs).
        d_lng = math.radians(self.east - self.west)
        return EARTH_RADIUS_KM**2 * d_lng * (math.sin(math.radians(self.north)) - math.sin(math.radians(self.south)))

    @property
    def bbox(self) -> Bbox:
        return self

    def contains(self, lat: float, lng: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lng <= self.east

    def intersects(self, other: Bbox) -> bool:
        return not (
            other.north < self.south or other.south > self.north or other.east < self.west or other.west > self.east
        )

    def covers(self, other: Bbox) -> bool:
        return (
            self.south <= other.south
            and self.north >= other.north
            and self.west <= other.west
            and self.east >= other.east
        )

    def expanded(self, fraction: float) -> Bbox:
        """This box grown by ``fraction`` of its height and width on every side."""
        d_lat, d_lng = (self.north - self.south) * fraction, (self.east - self.west) * fraction
        return Bbox(self.south - d_lat, self.west - d_lng, self.north + d_lat, self.east + d_lng)

    def quadrants(self) -> tuple[Bbox, Bbox, Bbox, Bbox]:
        lat, lng = self.centre
        return (
            Bbox(lat, self.west, self.north, lng),
            Bbox(lat, lng, self.north, self.east),
            Bbox(self.south, self.west, lat, lng),
            Bbox(self.south, lng, lat, self.east),
        )

    def grid(self, rows: int, cols: int) -> list[Bbox]:
        """The box cut into ``rows`` × ``cols`` equal cells, north-west first, row by row."""
        d_lat, d_lng = (self.north - self.south) / rows, (self.east - self.west) / cols
        return [
            Bbox(
                self.north - (r + 1) * d_lat,
                self.west + c * d_lng,
                self.north - r * d_lat,
                self.west + (c + 1) * d_lng,
            )
            for r in range(rows)
            for c in range(cols)
        ]

    def overlaps(self, cell: Bbox) -> bool:
        return self.intersects(cell)

    def to_list(self) -> list[float]:
        return [self.south, self.west, self.north, self.east]


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Circle:
    lat: float
    lng: float
    radius_km: float

    @property
    def bbox(self) -> Bbox:
        d_lat = math.degrees(self.radius_km / EARTH_RADIUS_KM)
        cos = max(math.cos(math.radians(self.lat)), 1e-9)
        d_lng = min(180.0, d_lat / cos)
        return Bbox(self.lat - d_lat, self.lng - d_lng, self.lat + d_lat, self.lng + d_lng)

    @property
    def area_km2(self) -> float:
        return math.pi * self.radius_km**2

    def contains(self, lat: float, lng: float) -> bool:
        return haversine_km(self.lat, self.lng, lat, lng) <= self.radius_km

    def overlaps(self, cell: Bbox) -> bool:
        # The nearest point of the cell to the centre, by clamping (exact enough at city scale).
        lat = min(max(self.lat, cell.south), cell.north)
        lng = min(max(self.lng, cell.west), cell.east)
        return self.contains(lat, lng)


Point = tuple[float, float]


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2, d3, d4 = orient(c, d, a), orient(c, d, b), orient(a, b, c), orient(a, b, d)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0))


@dataclass(frozen=True, slots=True)
class Polygon:
    """A simple polygon of (lat, lng) vertices; the closing edge is implied."""

    points: tuple[tuple[float, float], ...]

    @property
    def bbox(self) -> Bbox:
        lats = [p[0] for p in self.points]
        lngs = [p[1] for p in self.points]
        return Bbox(min(lats), min(lngs), max(lats), max(lngs))

    @property
    def area_km2(self) -> float:
        # Shoelace on an equirectangular projection about the polygon's middle latitude.
        mid = math.radians(self.bbox.centre[0])
        xy = [(p[1] * _KM_PER_DEG * math.cos(mid), p[0] * _KM_PER_DEG) for p in self.points]
        twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(xy, xy[1:] + xy[:1], strict=True))
        return abs(twice) / 2

    def edges(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        pts = list(self.points)
        return list(zip(pts, pts[1:] + pts[:1], strict=True))

    def contains(self, lat: float, lng: float) -> bool:
        inside = False
        for (lat1, lng1), (lat2, lng2) in self.edges():
            if (lng1 > lng) != (lng2 > lng):
                at = lat1 + (lng - lng1) * (lat2 - lat1) / (lng2 - lng1)
                if lat < at:
                    inside = not inside
        return inside

    def overlaps(self, cell: Bbox) -> bool:
        if not self.bbox.intersects(cell):
            return False
        if any(cell.contains(lat, lng) for lat, lng in self.points):
            return True
        corners = ((cell.south, cell.west), (cell.south, cell.east), (cell.north, cell.east), (cell.north, cell.west))
        if any(self.contains(lat, lng) for lat, lng in corners):
            return True
        sides = list(zip(corners, corners[1:] + corners[:1], strict=True))
        return any(_segments_cross(a, b, c, d) for a, b in self.edges() for c, d in sides)


Area = Bbox | Circle | Polygon


def area_to_dict(area: Area) -> dict[str, Any]:
    """The area as the job spec writes it."""
    if isinstance(area, Bbox):
        return {"bbox": area.to_list()}
    if isinstance(area, Circle):
        return {"center": [area.lat, area.lng], "radius_km": area.radius_km}
    return {"polygon": [[lat, lng] for lat, lng in area.points]}


def _point(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    lat, lng = float(value[0]), float(value[1])
    if not _finite(lat, lng) or not -90 <= lat <= 90 or not -180 <= lng <= 180:
        return None
    return lat, lng


_POINT_HELP = "must be [latitude, longitude] with latitude -90..90 and longitude -180..180"


def area_problems(value: Any, max_area_km2: float) -> tuple[Area | None, list[str]]:
    """The area a job spec's ``area`` field describes, or every problem with it, each named."""
    if not isinstance(value, Mapping):
        return None, ["area: must be an object: {\"bbox\": …}, {\"center\": …, \"radius_km\": …} or {\"polygon\": …}"]
    kinds = [k for k in ("bbox", "center", "polygon") if k in value]
    allowed = {"bbox": {"bbox"}, "center": {"center", "radius_km"}, "polygon": {"polygon"}}
    if len(kinds) != 1:
        return None, ["area: give exactly one of 'bbox', 'center' with 'radius_km', or 'polygon'"]
    kind = kinds[0]
    problems = [f"area.{k}: unknown field" for k in value if k not in allowed[kind]]
    area: Area | None = None
    if kind == "bbox":
        raw = value["bbox"]
        numbers = (
            isinstance(raw, list | tuple)
            and len(raw) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
        )
        if not numbers:
            problems.append("area.bbox: must be [south, west, north, east], four numbers")
        else:
            s, w, n, e = (float(v) for v in raw)
            if not (-90 <= s <= 90 and -90 <= n <= 90):
                problems.append("area.bbox: south and north must be latitudes between -90 and 90")
            elif s >= n:
                problems.append(f"area.bbox: south must be less than north (got south {s:g}, north {n:g})")
            if not (-180 <= w <= 180 and -180 <= e <= 180):
                problems.append("area.bbox: west and east must be longitudes between -180 and 180")
            elif w >= e:
                problems.append(
                    f"area.bbox: west must be less than east (got west {w:g}, east {e:g}; "
                    "an area across the antimeridian is not supported)"
                )
            if not problems:
                area = Bbox(s, w, n, e)
    elif kind == "center":
        centre = _point(value["center"])
        if centre is None:
            problems.append(f"area.center: {_POINT_HELP}")
        radius = value.get("radius_km")
        if radius is None:
            problems.append("area.radius_km: is required with 'center'")
        elif isinstance(radius, bool) or not isinstance(radius, int | float) or not math.isfinite(radius):
            problems.append("area.radius_km: must be a number of kilometres")
        elif radius <= 0:
            problems.append(f"area.radius_km: must be greater than 0 (got {radius:g})")
        elif centre is not None and not problems:
            area = Circle(centre[0], centre[1], float(radius))
    else:
        raw = value["polygon"]
        if not isinstance(raw, list | tuple):
            problems.append("area.polygon: must be an array of [latitude, longitude] points")
        elif len(raw) < 3:
            problems.append(f"area.polygon: needs at least 3 points (got {len(raw)})")
        else:
            points = [_point(p) for p in raw]
            bad = [i for i, p in enumerate(points) if p is None]
            for i in bad[:3]:
                problems.append(f"area.polygon[{i}]: {_POINT_HELP}")
            if not bad:
                polygon = Polygon(tuple(p for p in points if p is not None))
                if polygon.area_km2 <= 0:
                    problems.append("area.polygon: its points enclose no area")
                elif not problems:
                    area = polygon
    if area is not None and area.area_km2 > max_area_km2:
        problems.append(
            f"area: covers {area.area_km2:,.0f} km², more than the configured maximum of "
            f"{max_area_km2:,.0f} km² (maps.max_area_km2)"
        )
        area = None
    return area, problems


def parse_area(value: Any, max_area_km2: float = math.inf) -> Area:
    """An area from its spec form; raises ``ValueError`` naming every problem."""
    area, problems = area_problems(value, max_area_km2)
    if area is None:
        raise ValueError("; ".join(problems))
    return area


# -- viewports --------------------------------------------------------------------------------


def _mercator_y(lat: float) -> float:
    """A latitude's Web Mercator y, in world pixels at zoom 0 (0 at the top, 256 at the bottom)."""
    lat = max(-_MAX_LAT, min(_MAX_LAT, lat))
    s = math.sin(math.radians(lat))
    return _TILE * (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi))


def _mercator_lat(y: float) -> float:
    n = math.pi * (1 - 2 * y / _TILE)
    return math.degrees(math.atan(math.sinh(n)))


@dataclass(frozen=True, slots=True)
class Viewport:
    """What one map shows: its centre, zoom and pixel size."""

    lat: float
    lng: float
    zoom: float
    width_px: int
    height_px: int

    @property
    def bbox(self) -> Bbox:
        scale = 2**self.zoom
        half_w = self.width_px / 2 / scale * 360 / _TILE
        y = _mercator_y(self.lat)
        half_h = self.height_px / 2 / scale
        return Bbox(_mercator_lat(y + half_h), self.lng - half_w, _mercator_lat(y - half_h), self.lng + half_w)

    @property
    def metres_per_px(self) -> float:
        return _EQUATOR_M_PER_PX * math.cos(math.radians(self.lat)) / 2**self.zoom

    def url_segment(self) -> str:
        """``@lat,lng,zoomz`` as Google's URLs spell a viewport (7 decimals: about 1 cm)."""
        return f"@{self.lat:.7f},{self.lng:.7f},{self.zoom:g}z"

    def camera(self, fov_degrees: float = 13.1) -> list[Any]:
        """This viewport as a Google page's camera: the altitude that shows it with ``fov``."""
        visible_m = self.metres_per_px * self.height_px
        altitude = visible_m / 2 / math.tan(math.radians(fov_degrees) / 2)
        return [[round(altitude, 4), self.lng, self.lat], [0, 0, 0], [self.width_px, self.height_px], fov_degrees]


def viewport_covering(box: Bbox, width_px: int, height_px: int) -> Viewport:
    """The viewport centred on ``box`` at the largest zoom (two decimals, rounded down) that shows all of it."""
    lat, lng = box.centre
    span_lng = max(box.east - box.west, 1e-9)
    span_y = max(_mercator_y(box.south) - _mercator_y(box.north), 1e-12)
    # Centre the box on the map in Mercator y, where the viewport is symmetric.
    lat = _mercator_lat((_mercator_y(box.south) + _mercator_y(box.north)) / 2)
    zoom_w = math.log2(width_px * 360 / (_TILE * span_lng))
    zoom_h = math.log2(height_px / span_y)
    zoom = math.floor(min(zoom_w, zoom_h, 21.0) * 100) / 100
    return Viewport(round(lat, 7), round(lng, 7), zoom, width_px, height_px)


def camera_viewport(camera: Any) -> Viewport | None:
    """The viewport a page's camera ``[[altitude, lng, lat], _, [w, h], fov]`` shows, if it is one."""
    try:
        (altitude, lng, lat), _heading, (width, height), fov = camera[0][:3], camera[1], camera[2][:2], camera[3]
        values = [float(altitude), float(lng), float(lat), float(width), float(height), float(fov)]
    except (TypeError, ValueError, IndexError):
        return None
    if not _finite(*values) or altitude <= 0 or width < 1 or height < 1 or not 0 < fov < 180:
        return None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    visible_m = 2 * float(altitude) * math.tan(math.radians(float(fov)) / 2)
    metres_per_px = visible_m / float(height)
    zoom = math.log2(_EQUATOR_M_PER_PX * math.cos(math.radians(float(lat))) / metres_per_px)
    return Viewport(float(lat), float(lng), zoom, int(width), int(height))


def grid_shape(box: Bbox, width_px: int, height_px: int) -> tuple[int, int]:
    """Rows and columns that cut ``box`` into cells about the viewport's shape (so each fits one map)."""
    aspect = (box.width_km / max(box.height_km, 1e-9)) / (width_px / height_px)
    if aspect >= 1:
        return 1, max(1, round(aspect))
    return max(1, round(1 / aspect)), 1
