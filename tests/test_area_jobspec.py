"""Job specs with ``coverage: "area"``: accepted shapes, the larger limit, and every named problem."""

from __future__ import annotations

from typing import Any

import pytest

from leadlawk_daemon.jobspec import AREA_LIMIT, JobSpecError, parse_job_spec
from leadlawk_daemon.maps.area import Bbox, Circle, Polygon

MAX = 65536


def problems(spec: dict[str, Any], **kw: Any) -> list[str]:
    with pytest.raises(JobSpecError) as caught:
        parse_job_spec(spec, MAX, **kw)
    return caught.value.problems


def test_a_first_job_is_as_it_was() -> None:
    spec = parse_job_spec({"id": "j1", "query": "plumbers", "location": "Omaha, NE"}, MAX)
    assert spec.coverage == "first"
    assert spec.area is None
    assert "coverage" not in spec.to_dict()
    assert problems({"query": "plumbers", "limit": 501}) == ["limit: must be between 1 and 500 (got 501)"]


@pytest.mark.parametrize(
    ("area", "expected"),
    [
        (None, None),
        ({"bbox": [41.2, -96.0, 41.3, -95.9]}, Bbox(41.2, -96.0, 41.3, -95.9)),
        ({"center": [41.25, -95.93], "radius_km": 3}, Circle(41.25, -95.93, 3.0)),
        ({"polygon": [[41.1, -96.0], [41.3, -96.0], [41.2, -95.8]]},
         Polygon(((41.1, -96.0), (41.3, -96.0), (41.2, -95.8)))),
    ],
)
def test_area_jobs_parse_and_their_canonical_spec_parses_back(area: dict[str, Any] | None, expected: Any) -> None:
    raw: dict[str, Any] = {"id": "a1", "query": "plumbers", "location": "Omaha, NE", "coverage": "area",
                           "limit": AREA_LIMIT}
    if area is not None:
        raw["area"] = area
    spec = parse_job_spec(raw, MAX)
    assert spec.coverage == "area"
    assert spec.area == expected
    assert spec.limit == 10_000
    assert parse_job_spec(spec.to_dict(), MAX) == spec


def test_an_area_job_without_a_limit_takes_every_business_up_to_10000() -> None:
    spec = parse_job_spec({"query": "plumbers", "location": "Omaha, NE", "coverage": "area"}, MAX)
    assert spec.limit == AREA_LIMIT


def test_a_batch_passes_its_area_to_every_child() -> None:
    spec = parse_job_spec({"id": "b", "queries": ["plumbers", "roofers"], "coverage": "area",
                           "area": {"center": [41.25, -95.93], "radius_km": 3}}, MAX)
    assert all(child.coverage == "area" and child.area == spec.area for child in spec.children())


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"area": {"bbox": [41.4, -96.0, 41.3, -95.9]}},
         "area.bbox: south must be less than north (got south 41.4, north 41.3)"),
        ({"area": {"center": [41.25, -95.93], "radius_km": 0}}, "area.radius_km: must be greater than 0 (got 0)"),
        ({"area": {"polygon": [[41.1, -96.0], [41.3, -96.0]]}}, "area.polygon: needs at least 3 points (got 2)"),
        ({"area": {"bbox": [30, -110, 45, -80]}},
         "area: covers 4,401,588 km², more than the configured maximum of 10,000 km² (maps.max_area_km2)"),
        ({"location": "Omaha, NE", "limit": 10_001}, "limit: must be between 1 and 10000 (got 10001)"),
    ],
)
def test_invalid_areas_are_rejected_with_a_named_problem(extra: dict[str, Any], expected: str) -> None:
    found = problems({"query": "plumbers", "coverage": "area", **extra})
    assert found == [expected]


def test_the_maximum_area_is_the_callers_setting() -> None:
    spec = {"query": "plumbers", "coverage": "area", "area": {"center": [41.25, -95.93], "radius_km": 10}}
    assert parse_job_spec(spec, MAX).area == Circle(41.25, -95.93, 10.0)  # 314 km² under the default
    assert problems(spec, max_area_km2=100) == [
        "area: covers 314 km², more than the configured maximum of 100 km² (maps.max_area_km2)"
    ]


def test_area_without_area_coverage_and_unknown_coverage_are_named() -> None:
    assert problems({"query": "plumbers", "area": {"bbox": [41.2, -96.0, 41.3, -95.9]}}) == [
        "area: is only for coverage 'area' (add \"coverage\": \"area\")"
    ]
    assert problems({"query": "plumbers", "coverage": "all"}) == ["coverage: must be 'first' or 'area' (got \"all\")"]


def _cli_spec(*argv: str) -> Any:
    from leadlawk_daemon import cli, control
    from leadlawk_daemon.settings import load_settings

    args = cli._parser().parse_args(["submit", "plumbers", "-l", "Omaha, NE", *argv])
    return control.spec_from_options(args.query, location=args.location, limit=args.limit,
                                     **cli._area_options(args, load_settings(None)))


def test_the_cli_flags_make_area_jobs() -> None:
    assert _cli_spec().coverage == "first"
    everything = _cli_spec("--all")
    assert (everything.coverage, everything.area, everything.limit) == ("area", None, 10_000)
    assert _cli_spec("--all", "--limit", "5000").limit == 5000
    assert _cli_spec("--bbox", "41.2,-96,41.3,-95.9").area == Bbox(41.2, -96.0, 41.3, -95.9)
    assert _cli_spec("--near", "41.25,-95.93", "--radius-km", "2.5").area == Circle(41.25, -95.93, 2.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--bbox", "41.2,-96,41.3"), "--bbox must be S,W,N,E"),
        (("--near", "41.25,-95.93"), "--near and --radius-km go together"),
        (("--bbox", "41.2,-96,41.3,-95.9", "--near", "1,2", "--radius-km", "1"), "give --bbox or --near"),
    ],
)
def test_bad_cli_area_flags_are_usage_errors(argv: tuple[str, ...], message: str) -> None:
    from leadlawk_daemon import cli

    with pytest.raises(cli.UsageError, match=message):
        _cli_spec(*argv)


async def test_http_submissions_are_held_to_the_configured_maximum_area() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from leadlawk_daemon.health import Health
    from leadlawk_daemon.http_api import create_app
    from leadlawk_daemon.metrics import Metrics
    from leadlawk_daemon.settings import load_settings

    class Jobs:
        def __init__(self) -> None:
            self.submitted: list[Any] = []

        async def submit(self, spec: Any) -> bool:
            self.submitted.append(spec)
            return True

        async def get(self, job_id: str) -> None:
            return None

        async def list(self, status: str | None) -> list[Any]:
            return []

        async def cancel(self, job_id: str) -> bool:
            return False

    settings = load_settings(environ={"LEADLAWK__MAPS__MAX_AREA_KM2": "100"})
    metrics = Metrics(process=False)
    jobs = Jobs()
    app = create_app(settings, Health(settings.resilience.health_check, settings.health, metrics), metrics, jobs=jobs)
    spec = {"query": "plumbers", "coverage": "area", "area": {"center": [41.25, -95.93], "radius_km": 10}}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        refused = await client.post("/jobs", json=spec)
        assert refused.status == 400
        assert "more than the configured maximum of 100 km² (maps.max_area_km2)" in await refused.text()
        spec["area"] = {"center": [41.25, -95.93], "radius_km": 5}  # 79 km²
        assert (await client.post("/jobs", json=spec)).status == 202
    assert [s.coverage for s in jobs.submitted] == ["area"]


def test_area_coverage_needs_a_location_or_an_area() -> None:
    assert problems({"query": "plumbers", "coverage": "area"}) == [
        "area: is required for coverage 'area' without a location (whose own map is the area)"
    ]
