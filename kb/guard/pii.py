"""PII detection and redaction before text leaves for a third-party provider.

Rule-based recognisers, no model and no network: e-mail addresses, phone numbers,
payment card numbers (Luhn-checked), IBANs (ISO 13616 length and mod-97 checked),
US social security numbers (invalid ranges excluded) and IPv4/IPv6 addresses
(parsed by `ipaddress`). Names, postal addresses and dates are not detected: a
pattern cannot tell a name from a word, and a guess would redact half the prompt.

`pii_redact` replaces each span with a placeholder such as ``[EMAIL_1]``; passing
the same ``mapping`` for the question, the history and the passages of one prompt
gives one value one placeholder everywhere, and `pii_restore` puts the values
back into the answer shown to the user who asked. `PiiLogFilter` keeps the same
values out of the logs.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EMAIL_ADDRESS = "EMAIL_ADDRESS"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
IBAN_CODE = "IBAN_CODE"
US_SSN = "US_SSN"
IP_ADDRESS = "IP_ADDRESS"

# Entity type -> placeholder stem, also the order in which overlapping spans of the
# same length are preferred (a valid card number beats the phone number it resembles).
PLACEHOLDER_STEMS: dict[str, str] = {
    EMAIL_ADDRESS: "EMAIL",
    IBAN_CODE: "IBAN",
    CREDIT_CARD: "CARD",
    US_SSN: "SSN",
    IP_ADDRESS: "IP",
    PHONE_NUMBER: "PHONE",
}
ENTITY_TYPES: tuple[str, ...] = tuple(PLACEHOLDER_STEMS)
_PRIORITY = {entity_type: rank for rank, entity_type in enumerate(ENTITY_TYPES)}
_ENTITY_OF_STEM = {stem: entity_type for entity_type, stem in PLACEHOLDER_STEMS.items()}
PLACEHOLDER_RE = re.compile(r"\[(" + "|".join(PLACEHOLDER_STEMS.values()) + r")_(\d+)\]")


@dataclass(frozen=True)
class PiiSpan:
    """One detected value: ``text == source[start:end]``."""

    entity_type: str
    start: int
    end: int
    text: str


# --- e-mail --------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])"
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w@-])"
)


def _emails(text: str) -> Iterator[PiiSpan]:
    for match in _EMAIL_RE.finditer(text):
        yield PiiSpan(EMAIL_ADDRESS, match.start(), match.end(), match.group())


# --- payment cards -------------------------------------------------------------

# Contiguous digits, or groups of four (Visa, Mastercard, ...), or Amex's 4-6-5.
_CARD_RE = re.compile(
    r"(?<![\w-])(?:"
    r"\d{13,19}"
    r"|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}"
    r"|\d{4}([ -])\d{6}\2\d{4,5}"
    r")(?![\w-]|[.,]\d)"
)


def luhn_valid(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _cards(text: str) -> Iterator[PiiSpan]:
    for match in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        # Issuers' numbers start with 2-6 (Mastercard 2-series, Amex/Diners 3, Visa 4,
        # Mastercard 5, Discover/UnionPay 6); the rest are airline, fuel or national cards
        # and, far more often, some other long number that happens to pass Luhn.
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield PiiSpan(CREDIT_CARD, match.start(), match.end(), match.group())


# --- IBAN ----------------------------------------------------------------------

# ISO 13616 registry: country -> IBAN length.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_IBAN_RE = re.compile(r"(?<![\w-])([A-Z]{2})(\d{2})((?: ?[A-Z0-9]){10,30})")


def iban_valid(iban: str) -> bool:
    """True if the compact IBAN has its country's length and a mod-97 remainder of 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[PiiSpan]:
    position = 0
    while match := _IBAN_RE.search(text, position):
        position = match.start() + 1
        length = IBAN_LENGTHS.get(match.group(1))
        if length is None:
            continue
        # The pattern may run on into the next upper-case word or IBAN: keep exactly
        # the country's number of characters, and the number must end there.
        wanted, end = length, match.start()
        while wanted and end < len(text):
            if text[end] != " ":
                wanted -= 1
            end += 1
        if wanted or (end < len(text) and text[end].isalnum()):
            continue
        value = text[match.start() : end]
        if iban_valid(value.replace(" ", "")):
            position = end
            yield PiiSpan(IBAN_CODE, match.start(), end, value)


# --- US social security numbers ------------------------------------------------

# A separator is required: nine bare digits are as often an account, licence or
# order number as an SSN.
_SSN_RE = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|[.,]\d)")
# Numbers published in advertising and examples, never issued to anyone.
_SSN_PUBLISHED = {"078051120", "219099999", "123456789"}


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """True if the parts fall in the ranges the SSA issues (no 000, 666, 9xx areas...)."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_PUBLISHED


def _ssns(text: str) -> Iterator[PiiSpan]:
    for match in _SSN_RE.finditer(text):
        if ssn_valid(match.group(1), match.group(3), match.group(4)):
            yield PiiSpan(US_SSN, match.start(), match.end(), match.group())


# --- IP addresses --------------------------------------------------------------

_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}")


def _ips(text: str) -> Iterator[PiiSpan]:
    for match in _IPV4_RE.finditer(text):
        try:
            ipaddress.IPv4Address(match.group())  # rejects 256+ and leading zeros
        except ValueError:
            continue
        yield PiiSpan(IP_ADDRESS, match.start(), match.end(), match.group())
    for match in _IPV6_RE.finditer(text):
        value = match.group()
        if value.endswith(":") and not value.endswith("::"):
            value = value[:-1]  # "fe80::1:" at the end of a clause
        groups = [part for part in re.split(r":+", value) if part]
        if len(groups) < 2:  # "::", "::1" and clock times are not worth a placeholder
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield PiiSpan(IP_ADDRESS, match.start(), match.start() + len(value), value)


# --- phone numbers -------------------------------------------------------------

# Two or more digit groups joined by one space, hyphen or dot (or an area code in
# parentheses), optionally after a + country code, optionally with an extension;
# or + and 8-15 bare digits. Deliberately no newlines: addresses put a postcode on
# one line and a house number on the next.
_PHONE_RE = re.compile(
    r"(?<![\w+\-.,/:])"
    r"(?P<number>"
    r"\+\d{8,15}"
    r"|(?:\+[ \t]?)?(?:\(\+?\d{1,5}\)|\d{1,5})"
    r"(?:(?:[ \t]?[-.][ \t]?|[ \t]|(?<=\)))(?:\(\d{1,5}\)|\d{1,6})){1,6}"
    r")"
    r"(?P<extension>[ \t]?(?:x|ext\.?|extension)[ \t]?\d{1,6})?"
    r"(?![\w\-/]|[.,:]\d)"
)
_PHONE_GROUP_RE = re.compile(r"\d+")
_PHONE_MIN_DIGITS, _PHONE_MAX_DIGITS = 8, 15
# Words that make a grouped number an identifier or an amount rather than a phone.
_NOT_PHONE_CONTEXT_RE = re.compile(
    r"\b(?:invoice|order|ref(?:erence)?|receipt|ticket|case|account|acct|id|no\.?|number|"
    r"version|v|isbn|serial|sku|part)[ \t:.#]*$|[$€£¥#][ \t]*$",
    re.IGNORECASE,
)
_PHONE_CONTEXT_RE = re.compile(
    r"(?:phone|tel|telephone|mobile|cell|fax|call|desk|office|whatsapp)\b[^\n]{0,12}$",
    re.IGNORECASE,
)


def _is_year(group: str) -> bool:
    return len(group) == 4 and 1800 <= int(group) <= 2099


def _is_date(groups: list[str]) -> bool:
    if len(groups) != 3:
        return False
    if _is_year(groups[0]):
        month, day = groups[1], groups[2]
    elif _is_year(groups[2]) and len(groups[0]) <= 2 and len(groups[1]) <= 2:
        # Day and month in either order.
        first, second = int(groups[0]), int(groups[1])
        return 1 <= min(first, second) <= 12 and 1 <= max(first, second) <= 31
    else:
        return False
    return len(month) <= 2 and len(day) <= 2 and 1 <= int(month) <= 12 and 1 <= int(day) <= 31


def _phone_shape_ok(number: str, before: str) -> bool:
    groups = _PHONE_GROUP_RE.findall(number)
    digits = "".join(groups)
    if not _PHONE_MIN_DIGITS <= len(digits) <= _PHONE_MAX_DIGITS:
        return False
    if _NOT_PHONE_CONTEXT_RE.search(before) and not _PHONE_CONTEXT_RE.search(before):
        return False
    international = number.startswith("+")
    if len(groups) == 1:
        return international
    separators = set(re.sub(r"[\d()+ \t]", "", number)) or {" "}
    if "." in separators:
        # Dotted numbers are versions, IP addresses and dates far more often than
        # phones; keep the North American 3.3.4 and the French 2.2.2.2.2.
        lengths = [len(group) for group in groups]
        if lengths not in ([3, 3, 4], [2, 2, 2, 2, 2]) and not international:
            return False
    if any(len(group) < 2 for group in groups[1:]):
        return False  # 10.0.19041, 3 1 4 1 5
    if _is_date(groups):
        return False
    if len(groups) == 2 and (_is_year(groups[0]) or (_is_year(groups[1]) and len(groups[0]) == 4)):
        return False  # 2024-00123, 1990-2020
    if [len(group) for group in groups] == [3, 2, 4] and separators == {"-"}:
        return False  # shaped like an SSN: the SSN recogniser decides
    thousands = all(len(group) == 3 for group in groups[1:]) and separators <= {" ", "."}
    if thousands and not international and "(" not in number and not groups[0].startswith("0"):
        # 12 345 678 is an amount unless someone calls it a phone number.
        return bool(_PHONE_CONTEXT_RE.search(before))
    return True


def _phones(text: str) -> Iterator[PiiSpan]:
    for match in _PHONE_RE.finditer(text):
        before = text[max(0, match.start() - 30) : match.start()]
        if _phone_shape_ok(match.group("number"), before):
            yield PiiSpan(PHONE_NUMBER, match.start(), match.end(), match.group())


# --- finding and redacting -----------------------------------------------------

_RECOGNISERS: tuple[Callable[[str], Iterator[PiiSpan]], ...] = (
    _emails,
    _ibans,
    _cards,
    _ssns,
    _ips,
    _phones,
)


def pii_find(text: str) -> list[PiiSpan]:
    """The PII spans of ``text``, ordered and non-overlapping.

    Where recognisers disagree, the longer span wins, then the more specific type
    (a Luhn-valid card over the phone number it also resembles).
    """
    candidates = [span for recognise in _RECOGNISERS for span in recognise(text)]
    candidates.sort(key=lambda span: (span.start - span.end, _PRIORITY[span.entity_type]))
    chosen: list[PiiSpan] = []
    for span in candidates:
        if all(span.end <= kept.start or span.start >= kept.end for kept in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda span: span.start)


@dataclass
class Redaction:
    """Redacted text and the placeholders it may contain, placeholder -> original value."""

    text: str
    placeholders: dict[str, str] = field(default_factory=dict)


def _normalised(entity_type: str, value: str) -> str:
    """The identity of a value: one card number is one placeholder however it is spaced."""
    if entity_type == EMAIL_ADDRESS:
        return value.lower()
    if entity_type == IP_ADDRESS:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:  # a hand-made mapping
            return value.lower()
    if entity_type == IBAN_CODE:
        return value.replace(" ", "").upper()
    return re.sub(r"[^\dx]", "", value.lower())


def pii_redact(text: str, *, mapping: dict[str, str] | None = None) -> Redaction:
    """Replace every PII span of ``text`` with a placeholder such as ``[EMAIL_1]``.

    ``mapping`` (placeholder -> value) is extended in place and returned as the
    redaction's ``placeholders``: pass one dict for all the texts of one prompt so
    that a value keeps its placeholder across question, history and passages.
    """
    placeholders = mapping if mapping is not None else {}
    known: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    for existing, value in placeholders.items():
        found = PLACEHOLDER_RE.fullmatch(existing)
        if found is None:
            continue
        entity_type = _ENTITY_OF_STEM[found.group(1)]
        known.setdefault((entity_type, _normalised(entity_type, value)), existing)
        counts[found.group(1)] = max(counts.get(found.group(1), 0), int(found.group(2)))

    pieces: list[str] = []
    position = 0
    for span in pii_find(text):
        key = (span.entity_type, _normalised(span.entity_type, span.text))
        placeholder = known.get(key)
        if placeholder is None:
            stem = PLACEHOLDER_STEMS[span.entity_type]
            counts[stem] = counts.get(stem, 0) + 1
            placeholder = f"[{stem}_{counts[stem]}]"
            known[key] = placeholder
            placeholders[placeholder] = span.text
        pieces += [text[position : span.start], placeholder]
        position = span.end
    pieces.append(text[position:])
    return Redaction(text="".join(pieces), placeholders=placeholders)


def pii_restore(text: str, placeholders: dict[str, str]) -> str:
    """Put the original values back for the placeholders the model echoed.

    Placeholders the mapping does not know (made up by the model) are left as they are.
    """
    return PLACEHOLDER_RE.sub(lambda found: placeholders.get(found.group(), found.group()), text)


# Attributes every LogRecord has; the others on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def _redacted(value: object) -> object:
    """``value`` with PII redacted from its strings (also inside lists, tuples and dicts)."""
    if isinstance(value, str):
        return pii_redact(value).text
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    return value


class PiiLogFilter(logging.Filter):
    """Redact PII from log records: the formatted message, the ``extra`` fields that are
    text (a JSON formatter writes them out) and any traceback text.

    The message is formatted here (``msg % args``) and the record keeps only the
    redacted result, so handlers and formatters further on never see the values.
    Install it on handlers (``"filters": ["pii"]`` in ``LOGGING``) to cover
    records from every logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logged as is, still redacted
            message = f"{record.msg} {record.args}" if record.args else str(record.msg)
        redacted = pii_redact(message).text
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = pii_redact(record.exc_text).text
        if record.stack_info:
            record.stack_info = pii_redact(record.stack_info).text
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}
        for key, value in extras.items():
            if isinstance(value, str | list | tuple | dict):
                setattr(record, key, _redacted(value))
        return True
