"""The webhook signature, and the receiver's snippet in docs/deliveries.md run as a receiver would run it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from leadlawk_daemon.deliveries.signing import sign, verify

DOC = Path(__file__).resolve().parent.parent / "docs" / "deliveries.md"
SECRET = b"whsec-doc-example"


def snippet() -> Callable[..., bool]:
    """``verify_leadlawk`` from the page's "Verifying a webhook" section, executed."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Verifying a webhook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the page lost its verification snippet"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # our own page's code
    found = namespace["verify_leadlawk"]
    assert callable(found)
    return found


def test_the_documented_snippet_accepts_our_signature_and_refuses_tampering_and_replays() -> None:
    verify_leadlawk = snippet()
    body = b'{"delivery_id": "d1", "leads": []}'
    now = int(time.time())
    header = sign(SECRET, body, now)
    assert verify_leadlawk(SECRET, header, body)
    assert not verify_leadlawk(SECRET, header, body.replace(b"d1", b"d2"))
    assert not verify_leadlawk(b"another secret", header, body)
    assert not verify_leadlawk(SECRET, sign(SECRET, body, now - 3600), body)  # an old one: a replay
    assert not verify_leadlawk(SECRET, "garbage", body)


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**36))
def test_our_verifier_agrees_with_the_signer(body: bytes, at: int) -> None:
    header = sign(SECRET, body, at)
    assert verify(header, body, SECRET, now=at)
    assert not verify(header, body + b"x", SECRET, now=at)
    assert not verify(header, body, SECRET, now=at + 301)


def test_a_header_past_its_bound_is_refused_unread() -> None:
    assert not verify("t=1," + "v1=" + "a" * 5000, b"", SECRET, now=1)
