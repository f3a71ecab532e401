"""Hostile websites: what an unvetted web serves a crawler, each with the verdict a safe one records.

``POST /_faults {"hostile": share}`` on the sites replica makes that share (0 to 1) of its sites
hostile. Which sites, and which shape each gets, follows from host + seed alone (a SHA-256, as
every other choice of the replica), so ``GET /_answers?site=HOST`` can say it: ``"hostile"`` names
the shape and ``"expect"`` the status (and, where the contract fixes it, a phrase of the reason,
the contacts or the cap) a correct daemon records for it. Hosts whose first label starts with
``t-hostile-<shape without underscores>-`` get that shape whatever the share (tests name the case).

Every shape is bounded in the replica itself: pages are at most about 1 MB and streamed in chunks,
the gzip bomb is generated block by block as the reader asks for it (never expanded here), the
drip stops after ``TRICKLE_BYTES``. The expectation is what the daemon *should* do, decided from
the issue, not from what it does today: a pathological page parsed in linear time is ``ok``.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from leadlawk_daemon.replicas.sites_content import Response, seeded_random

__all__ = [
    "CHAIN_HOSTS",
    "SHAPES",
    "TRICKLE_BYTES",
    "Shape",
    "forbidden_target",
    "hostile_answers",
    "hostile_shape",
    "render_hostile",
]

TRICKLE_BYTES = 600  # ten minutes at a byte a second: far past any sane read timeout
CHAIN_HOSTS = 5  # the redirect chain's hosts, the site itself included (4 redirects: within max_redirects 5)
BOMB_BLOCKS = 4096  # MiB the gzip bomb expands to (4 GiB), from about 8 MB sent
PATTERN_RUN = 128 * 1024  # the quote run's repeats: 256 KiB of "'a"
SPACE_RUN = 40_000  # spaces before each "[at]"
MANY = 20_000  # addresses or tel: links on one page
_LONG_PATH = "/" + "a" * 40 + "/"  # 40 characters for the backtracking robots rule to chew on
_BACKTRACKING_RULE = "Disallow: /*a*a*a*a*a*a*a*a*a*a*a*a*b"
_REFUSED = "refused by the egress policy"  # docs/egress-policy.md: the reason names the address, then this
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOP = "hop"  # the forced label of the redirect chain's later hosts: t-hostile-hop<i>-<slug>.example


@dataclass(frozen=True, slots=True)
class Shape:
    """One hostile shape and the verdict a correct daemon records for a site of that shape."""

    name: str
    what: str
    status: str
    reason: str | None = None  # a phrase the recorded reason contains; None: the contract fixes none
    truncated: bool | None = None  # the home page is cut at sites.max_bytes
    capped: str | None = None  # the contact kind whose per-page cap the page passes
    email: str | None = None  # the local part of the one address a correct reader finds


SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("quote_run", "256 KiB of \"'a\" then \"@\" (super-linear for a naive email pattern)", "ok", email="info"),
    Shape("space_run", f"runs of {SPACE_RUN:,} spaces before \"[at]\", about 256 KiB", "ok", email="info"),
    Shape("many_emails", f"{MANY:,} distinct addresses on the home page", "ok", capped="emails"),
    Shape("many_tels", f"{MANY:,} distinct tel: links on the home page", "ok", capped="phones"),
    Shape("gzip_bomb", f"Content-Encoding: gzip, {BOMB_BLOCKS} MiB expanded from about 1/500 of it", "ok",
          truncated=True),
    Shape("charset_rot13", "Content-Type: text/html; charset=rot13 (a codec, not a text encoding)", "ok",
          email="info"),
    Shape("charset_base64", "Content-Type: text/html; charset=base64", "ok", email="info"),
    Shape("charset_zlib", "<meta charset=\"zlib\">", "ok", email="info"),
    Shape("redirect_loopback", "302 to http://127.0.0.1:<listener>/jobs", "blocked_by_policy", reason=_REFUSED),
    Shape("redirect_mapped", "302 to http://[::ffff:127.0.0.1]:<listener>/", "blocked_by_policy", reason=_REFUSED),
    Shape("redirect_hex", "302 to http://0x7f.1:<listener>/", "blocked_by_policy", reason=_REFUSED),
    Shape("redirect_localhost", "302 to http://localhost:<listener>/", "blocked_by_policy", reason=_REFUSED),
    Shape("redirect_metadata", "302 to http://169.254.169.254/latest/meta-data/", "blocked_by_policy", reason=_REFUSED),
    Shape("redirect_chain", f"{CHAIN_HOSTS} hosts redirecting in turn, each with its own slow robots.txt and page",
          "dead", reason="(whole site)"),
    Shape("trickle", "headers, then the body one byte a second", "dead", reason="timed out"),
    Shape("robots_backtrack", f"robots.txt {_BACKTRACKING_RULE!r}, the site's pages at 40-character paths", "ok",
          email="office"),
)}


def _redirect_target(shape: str, listener_port: int) -> str:
    return {
        "redirect_loopback": f"http://127.0.0.1:{listener_port}/jobs",
        "redirect_mapped": f"http://[::ffff:127.0.0.1]:{listener_port}/",
        "redirect_hex": f"http://0x7f.1:{listener_port}/",
        "redirect_localhost": f"http://localhost:{listener_port}/",
        "redirect_metadata": "http://169.254.169.254/latest/meta-data/",
    }[shape]


def _bare(host: str) -> str:
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


_TOKENS = {name.replace("_", ""): name for name in SHAPES}


def _forced(host: str) -> str | None:
    label = host.split(".", 1)[0]
    if not label.startswith("t-hostile-"):
        return None
    token = label[len("t-hostile-"):].split("-", 1)[0]
    if token.startswith(_HOP) and token[len(_HOP):].isdigit():
        return _HOP
    return _TOKENS.get(token)


def hostile_shape(host: str, seed: int, share: float) -> str | None:
    """The hostile shape of ``host`` with ``share`` of the sites hostile (None: an ordinary site);
    ``"hop"`` for a later host of a redirect chain."""
    host = _bare(host)
    forced = _forced(host)
    if forced is not None:
        return forced
    if share <= 0:
        return None
    rng = seeded_random(seed, host, "hostile")
    if rng.random() >= share:
        return None
    return rng.choice(tuple(SHAPES))


def hostile_answers(host: str, shape: str, ordinary: dict[str, Any]) -> dict[str, Any]:
    """``/_answers`` for a hostile site: the ordinary keys, with the verdict ``expect`` names."""
    host = _bare(host)
    if shape == _HOP:
        return {**ordinary, "kind": "hostile", "hostile": _HOP,
                "expect": {"status": "ok", "reason": None}, "status": "ok", "reason": None}
    spec = SHAPES[shape]
    expect: dict[str, Any] = {"status": spec.status, "reason": spec.reason}
    if spec.truncated is not None:
        expect["truncated"] = spec.truncated
    if spec.capped is not None:
        expect["capped"] = {spec.capped: MANY}
    if spec.email is not None:
        expect["emails"] = [f"{spec.email}@{host}"]
    readable = spec.status == "ok"
    return {
        **ordinary,
        "kind": "hostile",
        "hostile": spec.name,
        "what": spec.what,
        "expect": expect,
        "status": spec.status,
        "reason": spec.reason,
        "emails": expect.get("emails", []),
        "junk": {},
        "phones": [],
        "socials": {},
        "cms": None,
        "https": False if readable else None,
        "cert_valid": None,
        "http_to_https": False if readable else None,
        "contact_form": False if readable else None,
        "home_url": f"http://{host}/",
    }


def forbidden_target(host: str) -> str | None:
    """The address ``host`` names when it is one no proxy should forward to (loopback, private,
    link-local, metadata…, in any spelling a URL allows: ``0x7f.1``, ``2130706433``, ``[::ffff:…]``,
    ``localhost``), else None (a public address, or a name the proxy would resolve)."""
    name = host.lower().strip("[]").rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "127.0.0.1"
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        if not name or not all(c in "0123456789abcdefx." for c in name):
            return None
        try:  # inet_aton reads every legacy IPv4 spelling: octal, hex, dotless, short forms
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside IPv6 (mapped, NAT64, 6to4) goes where the IPv4 one does.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            address = address.sixtofour
    return None if address.is_global else str(address)


# --- the pages ------------------------------------------------------------------------------------

def _page(host: str, body: str, *, head: str = '<meta charset="utf-8">') -> str:
    return (f"<!DOCTYPE html><html><head>{head}<title>{host}</title></head><body><h1>{host}</h1>"
            f"{body}</body></html>")


def _html(body: bytes | str, content_type: str = "text/html; charset=utf-8") -> Response:
    data = body.encode() if isinstance(body, str) else body
    return Response(200, [("Content-Type", content_type), ("Server", "Apache")], data)


def _streamed(head: str, parts: Iterator[str], tail: str) -> Iterator[bytes]:
    """A page sent a thousand items at a time: never held whole, here or in the socket's buffer."""
    yield head.encode()
    batch: list[str] = []
    for part in parts:
        batch.append(part)
        if len(batch) == 1000:
            yield "".join(batch).encode()
            batch.clear()
    yield ("".join(batch) + tail).encode()


def _many(shape: str, host: str) -> Response:
    items = ((f"<span>staff{i}@{host}</span> " for i in range(MANY)) if shape == "many_emails"
             else (f'<a href="tel:+1402{i:07d}">call</a> ' for i in range(MANY)))
    head, _, tail = _page(host, "\x00").partition("\x00")
    return Response(200, [("Content-Type", "text/html; charset=utf-8")], stream=_streamed(head, items, tail))


@functools.cache
def _bomb_parts() -> tuple[bytes, bytes]:
    """One MiB of markup as raw deflate (about 2 KB) that refers to nothing before it (a full flush),
    so that it can be repeated; and the plain MiB, for the trailer's CRC. Made once, on first use."""
    plain = b"<p>bomb</p>\n" * ((1 << 20) // 12) + b"\n" * ((1 << 20) % 12)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(plain) + packer.flush(zlib.Z_FULL_FLUSH), plain


def _gzip_bomb(host: str) -> Iterator[bytes]:
    """A gzip stream expanding to ``BOMB_BLOCKS`` MiB, made as it is read: one compressed MiB
    (about 2 KB) at a time, the CRC kept as it goes; a reader that stops, stops it."""
    block, plain = _bomb_parts()
    head = _page(host, "").removesuffix("</body></html>").encode()
    opener = zlib.compressobj(9, zlib.DEFLATED, -15)
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + opener.compress(head) + opener.flush(zlib.Z_FULL_FLUSH)
    crc, size = zlib.crc32(head), len(head)
    for _ in range(0, BOMB_BLOCKS, 8):
        for _ in range(8):
            crc, size = zlib.crc32(plain, crc), size + len(plain)
        yield block * 8
    closer = zlib.compressobj(9, zlib.DEFLATED, -15)
    yield closer.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)


def _trickle() -> Iterator[bytes]:
    page = _page("trickle", "<p>" + "." * TRICKLE_BYTES + "</p>").encode()[:TRICKLE_BYTES]
    for at in range(len(page)):
        yield page[at:at + 1]


def _robots(shape: str) -> Response:
    rules = _BACKTRACKING_RULE if shape == "robots_backtrack" else "Disallow: /wp-admin/"
    return Response(200, [("Content-Type", "text/plain")], f"User-agent: *\n{rules}\n".encode())


def _hop_host(host: str, hop: int) -> str:
    slug = host.split(".", 1)[0]
    if _forced(host) == _HOP:
        slug = slug.split("-", 3)[3]
    return f"t-hostile-{_HOP}{hop}-{slug[:40]}.example"


def _hop_index(host: str) -> int:
    return int(host.split(".", 1)[0].split("-")[2][len(_HOP):])


def _not_found() -> Response:
    return Response(404, [("Content-Type", "text/html")], b"<h1>Not Found</h1>")


def render_hostile(
    shape: str, host: str, path: str, *, listener_port: int, chain_delay: float
) -> Response:
    """The answer of hostile site ``host`` (of ``shape``) to ``GET http://host/path``."""
    host = _bare(host)
    bare = path.split("?", 1)[0]
    if shape in ("redirect_chain", _HOP):
        response = _chain(shape, host, bare)
        response.delay = chain_delay
        return response
    if bare == "/robots.txt":
        return _robots(shape)
    email = f"<p>Email: info@{host}</p>"
    if shape.startswith("redirect_"):
        if bare != "/":
            return _not_found()
        return Response(302, [("Location", _redirect_target(shape, listener_port)), ("Server", "nginx")])
    if shape == "robots_backtrack":
        return _backtrack(host, bare)
    if bare != "/":
        return _not_found()
    if shape == "quote_run":
        return _html(_page(host, email + "<p>" + "'a" * PATTERN_RUN + "@</p>"))
    if shape == "space_run":
        run = ("<p>x" + " " * SPACE_RUN + "[at] </p>") * 6
        return _html(_page(host, email + run))
    if shape in ("many_emails", "many_tels"):
        return _many(shape, host)
    if shape == "gzip_bomb":
        return Response(200, [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "gzip")],
                        stream=_gzip_bomb(host))
    if shape == "charset_rot13":
        return _html(_page(host, email), "text/html; charset=rot13")
    if shape == "charset_base64":
        return _html(_page(host, email), "text/html; charset=base64")
    if shape == "charset_zlib":
        return _html(_page(host, email, head='<meta charset="zlib">'), "text/html")
    if shape == "trickle":
        return Response(200, [("Content-Type", "text/html; charset=utf-8")], stream=_trickle(), pace=1.0)
    raise ValueError(f"no hostile shape {shape!r}")


def _chain(shape: str, host: str, bare: str) -> Response:
    if bare == "/robots.txt":
        return _robots(shape)
    if bare != "/":
        return _not_found()
    hop = _hop_index(host) if shape == _HOP else 1
    if hop < CHAIN_HOSTS:
        return Response(302, [("Location", f"http://{_hop_host(host, hop + 1)}/"), ("Server", "nginx")])
    return _html(_page(host, "<p>The end of the chain.</p>"))


def _backtrack(host: str, bare: str) -> Response:
    if bare == "/":
        return Response(301, [("Location", _LONG_PATH), ("Server", "Apache")])
    tail = _LONG_PATH.strip("/")
    if bare == _LONG_PATH:
        links = f'<a href="/contact-{tail}">Contact us</a> <a href="/about-{tail}">About us</a>'
        return _html(_page(host, f"<nav>{links}</nav><p>Family owned since 1990.</p>"))
    if bare == f"/contact-{tail}":
        return _html(_page(host, f"<p>Write to office@{host}</p>"))
    if bare == f"/about-{tail}":
        return _html(_page(host, "<p>About us.</p>"))
    return _not_found()
