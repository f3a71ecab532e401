"""A web page's bytes as text, the way a browser reads them, whatever charset the site claims.

The charset label comes from the site, so it is an attacker's input: Python's codec registry also
holds codecs that are not text encodings (``rot13``, ``base64``, ``zlib``…), one that always
raises (``undefined``), and text encodings no browser reads a page in (``utf-7``, EBCDIC's
``cp037``). Only the encodings of the WHATWG Encoding Standard are accepted, each decoded with the
codec browsers use for it; any other label is as if none were given. Decoding never raises.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode_body", "text_codec"]

# Python's name for a WHATWG encoding (as ``codecs.lookup`` spells it, so every alias Python knows
# is covered) → the codec to decode it with. WHATWG decodes latin-1 and ascii as windows-1252,
# iso-8859-9 as windows-1254, tis-620 as windows-874, gb2312 and gbk as gb18030, big5 with the
# HKSCS extensions, shift_jis as windows-31j (cp932) and euc-kr as windows-949.
# UTF-16 is left out on purpose: a label cannot switch to it, only a BOM can (WHATWG, like today).
_WHATWG = {
    "utf-8": "utf-8",
    "ascii": "cp1252", "latin-1": "cp1252", "iso8859-1": "cp1252", "cp1252": "cp1252",
    "iso8859-2": "iso8859-2", "iso8859-3": "iso8859-3", "iso8859-4": "iso8859-4", "iso8859-5": "iso8859-5",
    "iso8859-6": "iso8859-6", "iso8859-7": "iso8859-7", "iso8859-8": "iso8859-8", "iso8859-9": "cp1254",
    "iso8859-10": "iso8859-10", "iso8859-11": "cp874", "tis-620": "cp874", "cp874": "cp874",
    "iso8859-13": "iso8859-13", "iso8859-14": "iso8859-14", "iso8859-15": "iso8859-15",
    "iso8859-16": "iso8859-16",
    "cp866": "cp866", "koi8-r": "koi8-r", "koi8-u": "koi8-u", "mac-roman": "mac-roman",
    "mac-cyrillic": "mac-cyrillic",
    "cp1250": "cp1250", "cp1251": "cp1251", "cp1253": "cp1253", "cp1254": "cp1254", "cp1255": "cp1255",
    "cp1256": "cp1256", "cp1257": "cp1257", "cp1258": "cp1258",
    "gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs", "big5hkscs": "big5hkscs", "cp950": "big5hkscs",
    "euc_jp": "euc_jp", "iso2022_jp": "iso2022_jp", "shift_jis": "cp932", "cp932": "cp932",
    "euc_kr": "cp949", "cp949": "cp949",
}
# WHATWG labels Python's registry does not know.
_LABELS = {
    "windows-874": "cp874", "x-mac-cyrillic": "mac-cyrillic", "x-mac-roman": "mac-roman",
    "iso-8859-8-i": "iso8859-8", "windows-31j": "cp932", "x-sjis": "cp932", "x-euc-jp": "euc_jp",
    "x-gbk": "gb18030", "cn-big5": "big5hkscs", "x-x-big5": "big5hkscs", "x-cp1252": "cp1252",
    "unicode-1-1-utf-8": "utf-8", "unicode11utf8": "utf-8", "unicode20utf8": "utf-8", "x-unicode20utf8": "utf-8",
}
_MAX_LABEL = 40  # the longest WHATWG label is 24 characters; a longer one is not worth a lookup

# Linear: every repeat is bounded, and ``[^<>]`` stops at the next tag, so no two ``<meta`` tried
# scan the same bytes; the search reads the first 4 KiB only (where the HTML standard's prescan looks).
_META_CHARSET = re.compile(
    rb"""<meta[^<>]{0,1024}?charset\s{0,16}=\s{0,16}["']?\s{0,16}([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"charset\s{0,16}=\s{0,16}([^;\s]{1,40})", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def text_codec(label: str | None) -> str | None:
    """The Python codec a browser would decode a page labelled ``label`` with, or None when the
    label names no web text encoding (unknown, not a text encoding, or not one a browser reads)."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if not label or len(label) > _MAX_LABEL:
        return None
    if label in _LABELS:
        return _LABELS[label]
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):  # ValueError: a label with a NUL in it
        return None
    return _WHATWG.get(name)


def decode_body(body: bytes | bytearray, content_type: str | None) -> str:
    """Bytes to text as a browser would: BOM, then the header's charset, then ``<meta charset>``,
    then UTF-8 if it decodes cleanly, else windows-1252. Never raises."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(name, errors="replace")
    declared = None
    if content_type:
        match = _HEADER_CHARSET.search(content_type[:4096])
        declared = text_codec(match.group(1)) if match else None
    if declared is None:
        match_bytes = _META_CHARSET.search(body[:4096])
        declared = text_codec(match_bytes.group(1).decode("ascii", "replace")) if match_bytes else None
    if declared is not None:
        try:
            return body.decode(declared, errors="replace")
        except UnicodeError:  # belt and braces: every codec above replaces, none is known to raise
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")
