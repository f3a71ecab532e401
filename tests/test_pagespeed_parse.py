"""Reading runPagespeed answers shaped like Google's: success, Lighthouse runtime error, no field data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadlawk_daemon.pagespeed.result import MalformedResponseError, lighthouse_error_in, parse_response

TESTED = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def audit(audit_id: str, value: float, unit: str = "millisecond") -> dict[str, Any]:
    return {"id": audit_id, "title": audit_id, "score": 0.5, "scoreDisplayMode": "numeric",
            "numericValue": value, "numericUnit": unit, "displayValue": str(value)}  # fmt: skip


def success_body(field: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "captchaResult": "CAPTCHA_NOT_NEEDED",
        "kind": "pagespeedonline#result",
        "id": "https://www.example.com/",
        "lighthouseResult": {
            "requestedUrl": "http://example.com",
            "finalUrl": "https://www.example.com/",
            "lighthouseVersion": "12.2.1",
            "runWarnings": ["The page may not be loading as expected because your test URL was redirected."],
            "audits": {
                "first-contentful-paint": audit("first-contentful-paint", 1812.4),
                "largest-contentful-paint": audit("largest-contentful-paint", 4105.0),
                "total-blocking-time": audit("total-blocking-time", 390.5),
                "cumulative-layout-shift": audit("cumulative-layout-shift", 0.123, "unitless"),
                "speed-index": audit("speed-index", 3300.2),
                "interactive": audit("interactive", 7000),
                "server-response-time": audit("server-response-time", 120),
            },
            "categories": {
                "performance": {"id": "performance", "score": 0.47},
                "accessibility": {"id": "accessibility", "score": 0.9},
                "best-practices": {"id": "best-practices", "score": 1},
                "seo": {"id": "seo", "score": 0.835},
            },
        },
        "analysisUTCTimestamp": "2025-05-01T12:00:00.000Z",
    }
    if field:
        body["loadingExperience"] = {
            "id": "https://www.example.com/",
            "metrics": {
                "LARGEST_CONTENTFUL_PAINT_MS": {
                    "percentile": 2900,
                    "category": "AVERAGE",
                    "distributions": [],
                },
                "INTERACTION_TO_NEXT_PAINT": {"percentile": 180, "category": "FAST", "distributions": []},
                "CUMULATIVE_LAYOUT_SHIFT_SCORE": {
                    "percentile": 12,
                    "category": "AVERAGE",
                    "distributions": [],
                },
            },
            "overall_category": "AVERAGE",
            "initial_url": "http://example.com",
        }
    else:
        body["loadingExperience"] = {"initial_url": "http://example.com"}
    return body


def parse(body: Any) -> Any:
    return parse_response(
        body, place_id="ChIJx", strategy="mobile", url="http://example.com", tested_at=TESTED
    )


def test_full_success() -> None:
    result = parse(success_body())
    assert (result.performance, result.accessibility, result.best_practices, result.seo) == (47, 90, 100, 84)
    assert (result.fcp_ms, result.lcp_ms, result.tbt_ms) == (1812.4, 4105.0, 390.5)
    assert (result.speed_index_ms, result.tti_ms, result.cls) == (3300.2, 7000.0, 0.123)
    assert result.final_url == "https://www.example.com/"
    assert result.error is None
    assert not result.site_broken
    assert len(result.warnings) == 1
    assert result.field is not None
    assert (result.field.lcp_ms, result.field.inp_ms, result.field.cls) == (2900, 180, 0.12)
    assert result.field.overall_category == "AVERAGE"
    row = result.to_row()
    assert row["place_id"] == "ChIJx"
    assert row["strategy"] == "mobile"
    assert row["performance"] == 47
    assert row["field_data"]["overall_category"] == "AVERAGE"
    assert row["tested_at"] == TESTED


def test_no_field_data() -> None:
    result = parse(success_body(field=False))
    assert result.field is None
    assert result.performance == 47
    body = success_body()
    del body["loadingExperience"]
    assert parse(body).field is None


def test_lighthouse_runtime_error_is_a_result_with_error() -> None:
    body = {
        "kind": "pagespeedonline#result",
        "lighthouseResult": {
            "requestedUrl": "http://broken.example/",
            "finalUrl": "http://broken.example/",
            "runtimeError": {"code": "NO_FCP", "message": "The page did not paint any content. (NO_FCP)"},
            "runWarnings": [],
            "audits": {},
            "categories": {"performance": {"id": "performance", "score": None}},
        },
    }
    result = parse(body)
    assert result.error == "NO_FCP"
    assert result.site_broken
    assert result.performance is None
    assert result.lcp_ms is None
    assert result.error_message is not None
    assert "did not paint" in result.error_message


@pytest.mark.parametrize(
    "body",
    [[], {"kind": "x"}, {"lighthouseResult": []}, {"lighthouseResult": {"audits": {}}}],
)
def test_a_body_that_is_not_a_result_is_named(body: Any) -> None:
    with pytest.raises(MalformedResponseError, match="PageSpeed response"):
        parse(body)


def test_lighthouse_error_codes_are_found_in_api_messages() -> None:
    message = (
        "Lighthouse returned error: FAILED_DOCUMENT_REQUEST. Lighthouse was unable to reliably load the "
        "page you requested. (Details: net::ERR_CONNECTION_FAILED)"
    )
    assert lighthouse_error_in(message) == "FAILED_DOCUMENT_REQUEST"
    assert lighthouse_error_in("Lighthouse returned error: ERRORED_DOCUMENT_REQUEST. (Status code: 404)") == (
        "ERRORED_DOCUMENT_REQUEST"
    )
    assert lighthouse_error_in("Internal error encountered.") is None
    assert lighthouse_error_in("Quota exceeded ... RESOURCE_EXHAUSTED") is None
