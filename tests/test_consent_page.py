"""The replica's consent interstitial in each language, and the daemon's structural view of it.

What a person would check: the page speaks the language asked for and nothing of English, it has
Google's shape (a reject-all and an accept-all form posting to /save with the same hidden fields,
"more options" a link), and posting a form records that answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.maps.consent import answer_allowed, html_is_consent, is_consent_url
from leadlawk_daemon.replicas.maps import create_maps_app
from leadlawk_daemon.replicas.maps_consent import CONSENT_LANGUAGES, ConsentWords, consent_page

LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl", "pt")
OTHERS = tuple(code for code in LANGUAGES if code != "en")
SEARCH = "/maps/search/bakers+in+Omaha,+NE"
# Words that are English and no other listed language's (checked on every page but the English one).
# Not "privacy": Italian has it too ("Norme sulla privacy").
ENGLISH_WORDS = frozenset(
    {
        "the",
        "and",
        "you",
        "your",
        "our",
        "all",
        "before",
        "continue",
        "reject",
        "accept",
        "more",
        "options",
        "policy",
        "terms",
        "if",
        "these",
        "will",
        "not",
        "use",
        "deliver",
        "maintain",
        "track",
        "measure",
        "understand",
        "how",
        "choose",
        "additional",
        "purposes",
    }
)

Client = TestClient[Any, Any]


class Page(HTMLParser):
    """What a visitor sees or hears of a page (text, aria-labels), and its forms and links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.lang = ""
        self.forms: list[dict[str, Any]] = []
        self.links: list[dict[str, str]] = []
        self._in_form = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if "aria-label" in found:
            self.text.append(found["aria-label"])
        if tag == "html":
            self.lang = found.get("lang", "")
        elif tag == "form":
            self.forms.append({"action": found.get("action", ""), "method": found.get("method", ""), "fields": {}})
            self._in_form = True
        elif tag == "input" and self._in_form and found.get("type") == "hidden":
            self.forms[-1]["fields"][found["name"]] = found.get("value", "")
        elif tag == "a":
            self.links.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())

    @property
    def words(self) -> set[str]:
        return {w.casefold() for w in re.findall(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", " ".join(self.text))}


def english_phrases(words: ConsentWords) -> list[str]:
    return [
        words.title,
        words.intro,
        *words.uses,
        words.choice,
        words.reject_all,
        words.accept_all,
        words.more_options,
        words.privacy,
        words.terms,
    ]


@pytest.fixture
async def maps() -> AsyncIterator[Client]:
    client: Client = TestClient(TestServer(create_maps_app()))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize("code", OTHERS)
def test_the_page_speaks_its_language_and_no_english(code: str) -> None:
    page = Page(consent_page(SEARCH, code))
    words = CONSENT_LANGUAGES[code]
    assert page.lang == code
    seen = " ".join(page.text)
    assert words.reject_all in seen
    assert words.accept_all in seen
    assert words.more_options in seen
    for phrase in english_phrases(CONSENT_LANGUAGES["en"]):
        assert phrase not in seen
    assert not page.words & ENGLISH_WORDS, sorted(page.words & ENGLISH_WORDS)


def test_the_english_word_list_catches_english() -> None:
    # The check above can fail: the English page is full of these words.
    assert len(Page(consent_page(SEARCH, "en")).words & ENGLISH_WORDS) >= 15


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_page_has_googles_structure(code: str) -> None:
    page = Page(consent_page(SEARCH, code))
    reject, accept = page.forms
    for form in (reject, accept):
        assert form["action"] == "/consent/save"
        assert form["method"] == "POST"
        assert {"gl", "m", "app", "pc", "continue", "x", "bl", "hl", "src", "cm", "set_eom"} <= set(form["fields"])
        assert form["fields"]["hl"] == code
        assert form["fields"]["continue"] == SEARCH
    assert reject["fields"]["set_eom"] == "true"
    assert "set_sc" not in reject["fields"]
    assert accept["fields"] | {"set_eom": "true"} == reject["fields"] | {"set_sc": "true", "set_aps": "true"}
    more = [link for link in page.links if link.get("aria-label") == CONSENT_LANGUAGES[code].more_options]
    assert more
    assert more[0]["href"].startswith("/consent/d?")


def test_unknown_languages_get_english_and_regional_codes_their_language() -> None:
    assert Page(consent_page(SEARCH, "ja")).lang == "en"
    assert Page(consent_page(SEARCH, "pt-PT")).lang == "pt"
    assert Page(consent_page(SEARCH, "PL")).lang == "pl"


def test_accept_only_has_one_form() -> None:
    page = Page(consent_page(SEARCH, "de", reject_form=False))
    assert [form["fields"]["set_eom"] for form in page.forms] == ["false"]


async def test_the_replica_serves_the_language_of_the_search_and_counts_answers(maps: Client) -> None:
    assert (await maps.post("/_faults", json={"consent": True})).status == 200
    first = await maps.get(f"{SEARCH}?hl=pl", allow_redirects=False)
    assert first.status == 302
    page = Page(await (await maps.get(first.headers["Location"])).text())
    assert page.lang == "pl"
    reject = page.forms[0]["fields"]
    saved = await maps.post("/consent/save", data=reject, allow_redirects=False)
    assert saved.status == 303
    assert saved.headers["Location"] == f"{SEARCH}?hl=pl"
    assert (await maps.get(f"{SEARCH}?hl=pl", allow_redirects=False)).status == 200
    stats = await (await maps.get("/_stats")).json()
    assert stats["consent_answers"] == {"pl": {"reject": 1}}
    more = await maps.get(page.links[0]["href"], allow_redirects=False)
    assert more.headers["Location"].startswith("/consent?")
    assert (await maps.post("/consent/save", data={"set_eom": "maybe"})).status == 400


# -- the daemon's side: recognised by structure ----------------------------------------------------

GOOGLE_INLINE = (
    '<div role="dialog"><form action="https://consent.google.com/save" method="POST">'
    '<input type="hidden" name="gl" value="DE"><button>Alle ablehnen</button></form></div>'
)


@pytest.mark.parametrize(
    ("url", "html", "expected"),
    [
        ("https://consent.google.com/ml?continue=x", "<html></html>", True),
        ("https://consent.google.de/m", "", True),
        ("http://127.0.0.1:8080/consent?hl=de", "", True),
        ("https://www.google.com/maps/place/x", consent_page(SEARCH, "nl"), True),
        ("https://www.google.com/maps/search/x", GOOGLE_INLINE, True),
        # Button words alone never make a consent page.
        ("https://www.google.com/maps/place/x", "<button>Reject all</button><p>Alle akzeptieren</p>", False),
        ("https://www.google.com/maps/place/x", '<form action="/search"><input name="q"></form>', False),
    ],
)
def test_the_daemon_knows_the_page_by_its_structure(url: str, html: str, expected: bool) -> None:
    assert html_is_consent(url, html) is expected


def test_a_broken_url_is_not_consent() -> None:
    assert not is_consent_url("http://[::1")


REPLICA = "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    ("action", "page_url", "allowed"),
    [
        ("https://consent.google.com/save", "https://consent.google.com/ml?hl=de", True),
        ("https://consent.google.de/save", "https://www.google.com/maps/search/x", True),
        ("https://consent.google.co.uk/save", "https://www.google.co.uk/maps", True),
        (f"{REPLICA}/consent/save", f"{REPLICA}/consent?hl=pl", True),
        ("https://evil.example/save", "https://evil.example/consent", True),  # its own origin: harmless
        # A page dressed as the consent page never makes the browser post elsewhere.
        ("http://127.0.0.1:8080/jobs", "https://consent.google.com/ml", False),
        ("http://consent.google.com/save", "https://www.google.com/maps", False),
        ("https://consent.google.com.evil.example/save", "https://www.google.com/maps", False),
        ("https://consent.google.com:8443/save", "https://www.google.com/maps", False),
        ("http://169.254.169.254/latest", f"{REPLICA}/consent", False),
        ("http://[::1", f"{REPLICA}/consent", False),
    ],
)
def test_an_answer_is_posted_only_to_google_or_the_page_itself(action: str, page_url: str, allowed: bool) -> None:
    assert answer_allowed(action, page_url, REPLICA if page_url.startswith(REPLICA) else "https://www.google.com") is (
        allowed
    )
