"""Every credential is masked where an operator could see it: ``leadlawk config show`` and the log
lines (one masking function serves both), and a scraped value never reaches a spreadsheet as a formula."""

from __future__ import annotations

import logging
import subprocess
import sys

import orjson
import pytest
import yaml

from leadlawk_daemon.logs import JsonFormatter, TextFormatter, redact, register_secret
from leadlawk_daemon.maps.session import parse_cookies
from leadlawk_daemon.store.export import spreadsheet_safe
from tests.linearity import cpu_time

# Every value below holds "S3cret": shown anywhere, it is a leak.
DATABASE_URL = "postgresql://app@db.internal:5432/leads?sslmode=require&password=Pg-S3cret"
REDIS_URL = "redis://:Redis-S3cret@cache.internal:6379/0"
PROXY = "http://proxyuser:Proxy-S3cret@proxy.internal:3128"
ADMIN_TOKEN = "Admin-S3cret-0123456789abcdef"
PAGESPEED_KEY = "AIza-PageSpeed-S3cret"


def test_config_show_masks_every_credential() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "LEADLAWK__SITES__PROXY": PROXY,
        "LEADLAWK_ADMIN_TOKEN": ADMIN_TOKEN,
        "PAGESPEED_API_KEY": PAGESPEED_KEY,
    }
    shown = subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "config", "show"], env=env, capture_output=True, text=True, check=True
    )
    assert "S3cret" not in shown.stdout
    config = yaml.safe_load(shown.stdout)
    # The user of a URL with a password stays (which account); a lone userinfo is the credential.
    assert config["database"]["url"] == "postgresql://***@db.internal:5432/leads?sslmode=require&password=***"
    assert config["redis"]["url"] == "redis://:***@cache.internal:6379/0"
    assert config["sites"]["proxy"] == "http://proxyuser:***@proxy.internal:3128"
    assert config["server"]["admin_token"] == "***"
    assert config["pagespeed"]["api_key"] == "***"


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("leadlawk.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_a_log_line_masks_every_credential(formatter: logging.Formatter) -> None:
    register_secret(ADMIN_TOKEN)  # as the CLI does with the configured token
    record = _record(
        "cannot reach %s", DATABASE_URL,
        redis=REDIS_URL,
        proxy=PROXY,
        request=f"GET /jobs?token={ADMIN_TOKEN} Authorization: Bearer {ADMIN_TOKEN}",
        psi=f"https://www.googleapis.com/pagespeedonline/v5/runPagespeed?url=x&key={PAGESPEED_KEY}",
        error={"api_key": PAGESPEED_KEY, "dsn": f"host=db password={'Pg-S3cret'} user=app"},
    )
    line = formatter.format(record)
    assert "S3cret" not in line
    for masked in (
        "postgresql://***@db.internal:5432/leads?sslmode=require&password=***",
        "redis://:***@cache.internal:6379/0",
        "http://proxyuser:***@proxy.internal:3128",
        "runPagespeed?url=x&key=***",
        "password=***",
    ):
        assert masked in line
    if isinstance(formatter, JsonFormatter):
        assert orjson.loads(line)["event"] == "cannot reach postgresql://***@db.internal:5432/leads?sslmode=require&password=***"


def test_the_maps_session_is_masked_in_logs() -> None:
    sid, psid = "g.a000S3cretSidValue", "sidts-S3cretPsidValue"
    # A cookie header or jar quoted by an error, before any session file was read: masked by name.
    for text in (
        f"Cookie: SID={sid}; __Secure-1PSID={psid}",
        f"cookies=SID={sid}&__Secure-3PSID={psid}",
        f"{{'name': 'x', 'SAPISID': '{sid}', 'NID': '{psid}'}}",
    ):
        assert "S3cret" not in redact(text), text
    # Once the session is read, its cookie values are masked wherever they turn up.
    parse_cookies(orjson.dumps({"cookies": [
        {"name": "SID", "value": sid, "domain": ".google.com", "path": "/", "expires": -1},
        {"name": "__Secure-1PSID", "value": psid, "domain": ".google.com", "path": "/", "expires": -1},
    ]}).decode())
    line = JsonFormatter().format(_record("context closed", detail=f"values {sid} and {psid} in a trace"))
    assert "S3cret" not in line
    assert "values *** and *** in a trace" in line


def test_what_is_no_credential_is_left_alone() -> None:
    for text in (
        "postgresql://db.internal/leads?sslmode=require",
        "https://example.com/@handle?monkey=1&keyword=2",
        "job_id=j1 waiting_on=['maps'] reason=quota",
        "a token: was refused",
    ):
        assert redact(text) == text


@pytest.mark.parametrize(
    "make", [lambda n: "a." * n, lambda n: "://" * n, lambda n: " key" * n, lambda n: "x://" + "a:" * n],
    ids=["dotted", "separators", "names", "open-userinfo"],
)
def test_a_megabyte_is_redacted_in_well_under_a_second(make: object) -> None:
    # 40 KB of the first shape took 14 s when each match attempt rescanned the rest of the text.
    assert callable(make)
    text = make(1_000_000 // len(make(1)))
    # CPU time, but a loaded 2-core machine still inflates it (0.58 s seen under load 20, 0.1-0.2 s
    # quiet): the bound is the test's name, and linearity is tested in tests/test_fuzz_text.py.
    assert cpu_time(lambda: redact(text), repeats=2) < 1.0


@pytest.mark.parametrize(
    "value",
    [
        "=1+1", "+1-555-0100", "-2", "@SUM(A1)", "\t=1", "\r=1",  # OWASP's list, as before
        " =HYPERLINK(\"http://evil\")", "\n=1+1", "\r\n@x", "\u3000=1", "\x00=1", "\u200b+1", "\ufeff-1",
        "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", " \uff1d1",  # full-width = + - @
    ],
)
def test_each_formula_prefix_is_neutralised(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["Ana's Plumbing", " Ana", "(402) 555-0101", "1=1", "", "  "])
def test_text_that_is_no_formula_is_unchanged(value: str) -> None:
    assert spreadsheet_safe(value) == value
