"""Turning the bytes of a text file (txt, md, html) into a string, whatever its encoding.

Uploads come from anywhere: UTF-8 with or without a BOM, UTF-16 from Windows tools,
cp1252 from old editors, now and then bytes that are no encoding at all. Decoding must
never fail, because a wrong guess shown with a warning is more useful to the admin than a
rejected file; so the order is: a BOM, strict UTF-8, the charset the file declares (HTML),
charset-normalizer's guess, and finally UTF-8 with replacement characters.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

import charset_normalizer

# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", ""),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
# WHATWG: a page labelled latin-1 or ASCII is decoded as windows-1252.
_CP1252_LABELS = frozenset({"latin-1", "latin1", "iso-8859-1", "iso8859-1", "ascii", "us-ascii"})
# charset-normalizer ranks equally plausible single-byte code pages arbitrarily (short
# Western text comes out as cp1250, "crème" as "crčme"); among ties, cp1252 wins.
_PREFERRED_AMONG_TIES = "cp1252"
_TIE_TOLERANCE = 0.01
_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)"""
    rb"""|<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)""",
    re.IGNORECASE,
)
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str
    warnings: list[str] = field(default_factory=list)


def decode_text(data: bytes, *, declared: str | None = None) -> DecodedText:
    """``data`` as a string without NUL characters; never raises.

    ``declared`` is the encoding the file itself names (``declared_html_charset``); it is
    trusted only if the bytes decode under it without error. A warning names the encoding
    whenever it was not UTF-8.
    """
    decoded = _decode(data, declared)
    if "\x00" in decoded.text:
        return DecodedText(decoded.text.replace("\x00", ""), decoded.encoding, decoded.warnings)
    return decoded


def declared_html_charset(data: bytes) -> str | None:
    """The charset an HTML or XHTML file declares in its first bytes (meta or XML declaration)."""
    match = _DECLARED_CHARSET.search(data[:_SNIFF_BYTES])
    if match is None:
        return None
    label = (match.group(1) or match.group(2)).decode("ascii").lower()
    return "cp1252" if label in _CP1252_LABELS else label


def _decode(data: bytes, declared: str | None) -> DecodedText:
    for bom, encoding, label in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            warnings = [f"text decoded as {label}"] if label else []
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError:
                text = body.decode(encoding, errors="replace")
                warnings.append(_replaced_warning(label or "UTF-8"))
            return DecodedText(text, encoding, warnings)
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in _declared_candidates(declared):
        try:
            return DecodedText(data.decode(encoding), encoding, [f"text decoded as {encoding}"])
        except (UnicodeDecodeError, LookupError):
            continue
    guessed = _guess(data)
    if guessed is not None:
        return DecodedText(guessed[0], guessed[1], [f"text decoded as {guessed[1]}"])
    return DecodedText(
        data.decode("utf-8", errors="replace"), "utf-8", [_replaced_warning("UTF-8")]
    )


def _declared_candidates(declared: str | None) -> list[str]:
    if not declared or declared.replace("-", "").replace("_", "") in {"utf8", "utf16"}:
        # A UTF-8 label on bytes that are not UTF-8 is a lie; UTF-16 needs a BOM here.
        return []
    # cp1252 leaves five bytes undefined; latin-1 decodes those too.
    return [declared, "latin-1"] if declared == "cp1252" else [declared]


def _guess(data: bytes) -> tuple[str, str] | None:
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    for match in matches:
        if (
            match.encoding == _PREFERRED_AMONG_TIES
            and match.chaos <= best.chaos + _TIE_TOLERANCE
            and match.coherence >= best.coherence - _TIE_TOLERANCE
        ):
            return str(match), match.encoding
    return str(best), best.encoding


def _replaced_warning(encoding: str) -> str:
    return f"the text is not valid {encoding}; unreadable bytes were replaced with \ufffd"
