"""Google's consent interstitial, known by its structure and answered in any language.

consent.google.com shows a visitor without a consent cookie (in the EU, or through an exit there)
a page in the visitor's language. What stays the same in every language is its structure: the
host, and forms that post to ``consent.google.com/save`` with hidden fields (``gl``, ``hl``,
``continue``, ``bl``, ``x`` …) among which ``set_eom`` says the answer: ``true`` in the reject-all
form, ``false`` in the accept-all form; "more options" is a link, not a form. So the page is
recognised by that structure and answered by the form's hidden field, never by a button's words
("Reject all", "Alle ablehnen", "Tout refuser", "Odrzuć wszystko" are one and the same form).

``maps.consent: reject`` (the default) answers with the reject-all form, or accept-all where the
page has no reject-all form; ``accept`` the other way round. Google asking again after an answer
is a consent loop, a block (:data:`leadlawk_daemon.maps.blocking.CONSENT_LOOP`).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "ACTION_JS",
    "CONSENT_SELECTOR",
    "ConsentAnswer",
    "answer_allowed",
    "answer_selectors",
    "html_is_consent",
    "is_consent_url",
]

ConsentAnswer = Literal["reject", "accept"]

# A form of the interstitial: one posting to consent.google.<tld>, or one carrying the answer
# field itself (the page can be served from another host, as the offline replica does, or inline
# in a dialog on www.google.com).
CONSENT_SELECTOR = (
    'form[action*="//consent.google."], form:has(input[name="set_eom"]), form:has(button[name="set_eom"])'
)
_SET_EOM = {"reject": "true", "accept": "false"}
_SET_EOM_MARKUP = re.compile(r"""name\s*=\s*["']?set_eom\b""", re.IGNORECASE)
_CONSENT_ACTION = re.compile(r"""action\s*=\s*["']?https?://consent\.google\.""", re.IGNORECASE)
_CONSENT_HOST = re.compile(r"consent\.google\.[a-z]{2,3}(?:\.[a-z]{2})?")
# Where the button found would send the answer: its form's action, resolved by the browser.
ACTION_JS = "button => (button.form && button.form.action) || ''"


def is_consent_url(url: str) -> bool:
    """Whether ``url`` is the interstitial by its address: a ``consent.`` host or a ``/consent`` path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (parts.hostname or "").startswith("consent.") or parts.path.startswith("/consent")


def html_is_consent(url: str, html: str) -> bool:
    """The same judgement for a page fetched without rendering (each test linear in ``html``)."""
    return is_consent_url(url) or bool(_SET_EOM_MARKUP.search(html) or _CONSENT_ACTION.search(html))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".casefold()


def answer_allowed(action: str, page_url: str, base_url: str) -> bool:
    """Whether answering may post to ``action``: Google's consent host over HTTPS, or the origin of
    the page or of ``maps.base_url``. The page is outside data: a form dressed as the consent
    page and posting elsewhere (the daemon's own API, a private address) is never submitted."""
    try:
        parts = urlsplit(action)
        if parts.scheme == "https" and _CONSENT_HOST.fullmatch(parts.hostname or "") and parts.port is None:
            return True
        return _origin(action) in (_origin(page_url), _origin(base_url))
    except ValueError:
        return False


def _answer_selector(set_eom: str) -> str:
    return (
        f'form:has(input[name="set_eom"][value="{set_eom}" i]) :is(button, input[type="submit"]), '
        f'button[name="set_eom"][value="{set_eom}" i]'
    )


def answer_selectors(answer: ConsentAnswer) -> tuple[str, str]:
    """Where to click, in order of preference: the chosen answer's form, then the other one."""
    other: ConsentAnswer = "accept" if answer == "reject" else "reject"
    return _answer_selector(_SET_EOM[answer]), _answer_selector(_SET_EOM[other])
