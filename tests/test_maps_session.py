"""``leadlawk maps-session import``: the three export formats, the file it writes (a Playwright
storage state, mode 0600), its errors (never quoting a cookie), and the job summary lines that say
what Google's limited view cost."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadlawk_daemon.cli import main
from leadlawk_daemon.collect import summary
from leadlawk_daemon.control import _event_line
from leadlawk_daemon.health import Health, limited_view_note
from leadlawk_daemon.maps.session import SessionCookies, SessionError, parse_cookies
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.qualify import HIDDEN_REVIEW_COUNT
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store.base import Job

SECRET = "g.a000-very-secret-session-value"
TS_SECRET = "sidts-CjEB-another-secret"

STORAGE_STATE = {"cookies": [
    {"name": "__Secure-1PSID", "value": SECRET, "domain": ".google.com", "path": "/", "expires": 1893456000,
     "httpOnly": True, "secure": True, "sameSite": "Lax"},
    {"name": "__Secure-1PSIDTS", "value": TS_SECRET, "domain": ".google.com", "path": "/", "expires": -1,
     "httpOnly": True, "secure": True, "sameSite": "Lax"},
], "origins": []}
EXTENSION = [
    {"name": "__Secure-1PSID", "value": SECRET, "domain": ".google.com", "path": "/", "expirationDate": 1893456000.5,
     "hostOnly": False, "httpOnly": True, "secure": True, "session": False, "sameSite": "no_restriction",
     "storeId": "0"},
    {"name": "__Secure-1PSIDTS", "value": TS_SECRET, "domain": ".google.com", "path": "/", "session": True,
     "httpOnly": True, "secure": True, "sameSite": "unspecified"},
]
NETSCAPE = (
    "# Netscape HTTP Cookie File\n"
    f"#HttpOnly_.google.com\tTRUE\t/\tTRUE\t1893456000\t__Secure-1PSID\t{SECRET}\n"
    f".google.com\tTRUE\t/\tTRUE\t0\t__Secure-1PSIDTS\t{TS_SECRET}\n"
)


@pytest.mark.parametrize(
    ("name", "text"),
    [("state.json", json.dumps(STORAGE_STATE)), ("extension.json", json.dumps(EXTENSION)),
     ("cookies.txt", NETSCAPE)],
)
def test_each_export_format_imports_as_a_private_storage_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    target = tmp_path / "private" / "maps-session.json"
    assert main(["maps-session", "import", str(source), "--to", str(target)]) == 0
    out, err = capsys.readouterr()
    assert "imported 2 cookie(s) for .google.com" in out
    assert SECRET not in out + err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    cookies = json.loads(target.read_text(encoding="utf-8"))["cookies"]
    assert [(c["name"], c["value"], c["domain"], c["secure"]) for c in cookies] == [
        ("__Secure-1PSID", SECRET, ".google.com", True),
        ("__Secure-1PSIDTS", TS_SECRET, ".google.com", True),
    ]
    assert int(cookies[0]["expires"]) == 1893456000
    assert cookies[1]["expires"] == -1  # a session cookie
    assert not SessionCookies(target).expired(now=1_800_000_000)
    assert SessionCookies(target).expired(now=1_900_000_000)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"origins": []}', 'needs a "cookies" list'),
        (json.dumps([{"name": "SID", "value": SECRET}]), "cookie 'SID' has no domain"),
        (f".google.com\tTRUE\t/\t{SECRET}\n", "cookies.txt line 1: expected 7 tab-separated fields"),
        ("# only comments\n", "no cookies found"),
    ],
)
def test_a_bad_export_is_one_clear_error_that_quotes_no_cookie(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    source = tmp_path / "export"
    source.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["maps-session", "import", str(source), "--to", str(tmp_path / "out.json")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert problem in err
    assert SECRET not in err
    assert not (tmp_path / "out.json").exists()
    with pytest.raises(SessionError):
        parse_cookies(text)


def test_the_summaries_say_what_the_limited_view_cost() -> None:
    progress = {"maps_view": "limited", "filters_not_applied": {"count": 7, "reason": HIDDEN_REVIEW_COUNT}}
    job = Job(id="j", spec={}, status="succeeded", created_at=datetime.now(UTC), found=9, written=9,
              progress=progress)
    out = io.StringIO()
    summary(job, [], out)
    text = out.getvalue()
    assert "limited view (limited)" in text
    assert f"7 lead(s) whose filters could not be applied: {HIDDEN_REVIEW_COUNT}" in text
    line = _event_line({"type": "job.finished", "status": "succeeded", "counters": {"found": 9}, **progress})
    assert "maps_view=limited" in line
    assert f"7 lead(s) whose filters could not be applied: {HIDDEN_REVIEW_COUNT}" in line
    full = _event_line({"type": "job.finished", "status": "succeeded", "counters": {}, "maps_view": "full"})
    assert "could not be applied" not in full
    assert "limited view" not in full


def test_readiness_stays_ready_under_the_limited_view_and_its_detail_says_so() -> None:
    settings = load_settings(environ={})
    metrics = Metrics(process=False)
    health = Health(settings.resilience.health_check, settings.health, metrics)
    health.notes["google_maps_view"] = lambda: limited_view_note(metrics)
    metrics.maps_view_limited.set(1)
    ready, checks = health.ready()
    assert ready
    assert checks["google_maps_view"]["ok"] is True
    assert checks["google_maps_view"]["degraded"].startswith("limited_view: Google Maps shows its signed-out")
    metrics.maps_view_limited.set(0)
    ready, checks = health.ready()
    assert ready
    assert "google_maps_view" not in checks


async def test_an_unusable_session_file_is_said_once_and_searched_without(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Context:
        def __init__(self) -> None:
            self.given: list[list[dict[str, object]]] = []

        async def add_cookies(self, cookies: list[dict[str, object]]) -> None:
            self.given.append(cookies)

    path = tmp_path / "session.json"
    path.write_text(f'{{"cookies": [{{"name": "SID", "value": "{SECRET}"}}]}}', encoding="utf-8")
    session, context = SessionCookies(path), Context()
    assert not await session.apply(context)
    assert not await session.apply(context)
    assert [r.getMessage() for r in caplog.records].count(
        "the Google Maps session file is unusable; searching signed out"
    ) == 1
    assert all(SECRET not in str(r.__dict__) for r in caplog.records)
    path.write_text(json.dumps(STORAGE_STATE), encoding="utf-8")
    assert await session.apply(context)
    assert not await session.apply(context)  # once per version of the file
    assert [[c["value"] for c in given] for given in context.given] == [[SECRET, TS_SECRET]]
