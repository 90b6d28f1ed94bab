"""PII detection and redaction before text leaves for a third-party provider.

Rule-based recognisers, no model and no network: e-mail addresses; phone numbers
(`phonenumbers`, Google's libphonenumber: a number written with + and a country
code is taken if its length is possible there, a national one only if it is a
valid number of one of the regions of ``CAIRN_PII_PHONE_REGIONS``); payment card
numbers (an issuer's prefix and length, 12-19 digits, and the Luhn check of
`stdnum.luhn`); IBANs (`stdnum.iban`: the country's format and mod-97); US social
security numbers (`stdnum.us.ssn`: no 000, 666 or 9xx area, no published
example) and IPv4/IPv6 addresses (parsed by `ipaddress`). Names, postal addresses
and dates are not detected: a pattern cannot tell a name from a word, and a
guess would redact half the prompt.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
from django.conf import settings
from stdnum import iban as stdnum_iban
from stdnum import isbn as stdnum_isbn
from stdnum import luhn, numdb
from stdnum.us import ssn as stdnum_ssn

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

# Contiguous digits, or groups of four (Visa, Mastercard, Maestro, ...), or Amex's
# 4-6-5 and Diners' 4-6-4.
_CARD_RE = re.compile(
    r"(?<![\w-])(?:"
    r"\d{12,19}"
    r"|\d{4}([ -])\d{4}\1\d{4}(?:\1\d{1,4}){0,2}"
    r"|\d{4}([ -])\d{6}\2\d{4,5}"
    r")(?![\w-]|[.,]\d)"
)

# Issuer identification number ranges (ISO/IEC 7812; first and last prefix of a
# range, of one length) and the lengths the scheme issues. A Luhn-valid number
# outside them is some other long number (a tenth of all numbers pass Luhn).
_CARD_SCHEMES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)), ("2221", "2720", (16,)),  # Mastercard
    ("34", "34", (15,)), ("37", "37", (15,)),  # American Express
    ("300", "305", (14, 15, 16, 17, 18, 19)), ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("3095", "3095", (16, 17, 18, 19)), ("38", "39", (16, 17, 18, 19)),  # Diners Club
    ("6011", "6011", (16, 17, 18, 19)), ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),  # Discover, RuPay, Troy
    ("62", "62", (16, 17, 18, 19)), ("81", "82", (16, 17, 18, 19)),  # UnionPay, RuPay
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("50", "50", tuple(range(12, 20))), ("56", "69", tuple(range(12, 20))),  # Maestro
    ("2200", "2205", (16, 17, 18, 19)),  # Mir, BORICA
    ("1", "1", (15,)),  # UATP
    ("1946", "1946", (16, 18, 19)),  # GPN
    ("8600", "8600", (16,)), ("9860", "9860", (16,)),  # UzCard, Humo
    ("9704", "9704", (16, 19)), ("9792", "9792", (16,)),  # Napas, Troy
)  # fmt: skip


def card_scheme_known(digits: str) -> bool:
    """True if some scheme issues numbers of this length with this prefix."""
    return any(
        len(digits) in lengths and low <= digits[: len(low)] <= high
        for low, high, lengths in _CARD_SCHEMES
    )


def luhn_valid(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum (`stdnum.luhn`)."""
    return digits.isdigit() and luhn.is_valid(digits)


def card_number_valid(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and card_scheme_known(digits) and luhn_valid(digits)


def _cards(text: str) -> Iterator[PiiSpan]:
    for match in _CARD_RE.finditer(text):
        value = match.group()
        # Groups of four may run on into a year or a code ("... 1111 2027"): drop
        # trailing groups until the number checks out or is too short to be a card.
        while True:
            digits = re.sub(r"\D", "", value)
            if card_number_valid(digits):
                yield PiiSpan(CREDIT_CARD, match.start(), match.start() + len(value), value)
                break
            shorter = re.sub(r"[ -]\d+$", "", value)
            if shorter == value or len(re.sub(r"\D", "", shorter)) < 12:
                break
            value = shorter


# --- IBAN ----------------------------------------------------------------------


def _iban_lengths() -> dict[str, int]:
    """Country -> IBAN length, from the ISO 13616 registry as `stdnum` ships it."""
    lengths = {}
    for _length, country, _high, properties, _children in numdb.get("iban").prefixes:
        sizes = re.findall(r"(\d+)!", properties.get("bban", ""))
        if sizes:
            lengths[country] = 4 + sum(int(size) for size in sizes)
    return lengths


IBAN_LENGTHS: dict[str, int] = _iban_lengths()

_IBAN_RE = re.compile(r"(?<![\w-])([A-Z]{2})(\d{2})((?: ?[A-Z0-9]){10,30})")


def iban_valid(iban: str) -> bool:
    """True if the compact IBAN has its country's format and a mod-97 remainder of 1,
    and passes the national check where `stdnum` knows one (BE, ES, ME, NO)."""
    return iban.isalnum() and stdnum_iban.is_valid(iban)


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
# Numbers published in examples, on top of those `stdnum.us.ssn` already refuses
# (078-05-1120 of the Woolworth wallet, 219-09-9999, 457-55-5462).
_SSN_EXAMPLES = {"123456789"}


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """True if the parts fall in the ranges the SSA issues (no 000, 666, 9xx areas...)."""
    number = area + group + serial
    return stdnum_ssn.is_valid(number) and number not in _SSN_EXAMPLES


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

DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "CH")

# Words that make a number an identifier rather than a phone (many national numbers
# are valid phone numbers somewhere: "order 0123456789" is a French one).
_NOT_PHONE_CONTEXT_RE = re.compile(
    r"\b(?:invoice|order|ref(?:erence)?|receipt|ticket|case|account|acct|id|no\.?|number|"
    r"version|v|isbn|issn|serial|sku|part|po|tracking|customer)[ \t:.#]*$|[$€£¥#][ \t]*$",
    re.IGNORECASE,
)
_PHONE_CONTEXT_RE = re.compile(
    r"(?:phone|tel|telephone|mobile|cell|fax|call|desk|office|whatsapp)\b[^\n]{0,12}$",
    re.IGNORECASE,
)
# Where a phone number can be: a run of digits and the characters that group them.
# `phonenumbers` parses every digit group of a text once per region, so only runs
# with enough digits for a phone number are handed to it, with a little text around
# (the matcher looks at the character before a number, and at an extension after it).
_PHONE_RUN_RE = re.compile(r"[+(]*\d[\d \t().\-/+]*")
_PHONE_MIN_DIGITS = 6
_PHONE_BEFORE, _PHONE_AFTER = 2, 24


def configured_phone_regions() -> tuple[str, ...]:
    """The regions whose national formats are recognised (``CAIRN_PII_PHONE_REGIONS``).

    Codes `phonenumbers` does not know are left out (``guard_eval pii`` prints the
    list in use).
    """
    configured = (
        getattr(settings, "CAIRN_PII_PHONE_REGIONS", DEFAULT_PHONE_REGIONS)
        if settings.configured
        else DEFAULT_PHONE_REGIONS
    )
    return _known_regions(tuple(configured))


@lru_cache(maxsize=64)
def _known_regions(regions: tuple[str, ...]) -> tuple[str, ...]:
    known: list[str] = []
    for region in regions:
        code = region.strip().upper()
        if code in phonenumbers.SUPPORTED_REGIONS and code not in known:
            known.append(code)
    return tuple(known)


def _looks_like_isbn(value: str) -> bool:
    # 0-306-40615-2: a hyphenated ISBN-10 is also a valid German or French number.
    return value.count("-") >= 3 and stdnum_isbn.is_valid(value)


def _phone_matches(text: str, regions: Sequence[str]) -> Iterator[phonenumbers.PhoneNumberMatch]:
    for run in _PHONE_RUN_RE.finditer(text):
        if sum(char.isdigit() for char in run.group()) < _PHONE_MIN_DIGITS:
            continue
        offset = max(0, run.start() - _PHONE_BEFORE)
        window = text[offset : run.end() + _PHONE_AFTER]
        matchers = [
            phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID)
            for region in regions  # national formats: a valid number of one of the regions
        ]
        if "+" in run.group():
            # Written with + and a country code: any length possible in that country.
            matchers.append(
                phonenumbers.PhoneNumberMatcher(
                    window, None, leniency=phonenumbers.Leniency.POSSIBLE
                )
            )
        for matcher in matchers:
            for match in matcher:
                # A number that starts in the text after the run has a run of its own.
                if match.start + offset < run.end():
                    yield phonenumbers.PhoneNumberMatch(
                        match.start + offset, match.raw_string, match.number
                    )


# The shape of a written phone number, valid or not in any numbering plan: support
# conversations carry numbers libphonenumber does not know (a new range, a typo, an
# extension, a country outside the configured regions), and a guard must err towards
# redacting them. Both recognisers' spans are candidates; the longest wins.
# Two or more digit groups joined by one space, hyphen or dot (or an area code in
# parentheses), optionally after a + country code, optionally with an extension;
# or + and 8-15 bare digits. Deliberately no newlines: addresses put a postcode on
# one line and a house number on the next.
_PHONE_SHAPE_RE = re.compile(
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
_SHAPE_MIN_DIGITS, _SHAPE_MAX_DIGITS = 8, 15


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
    if not _SHAPE_MIN_DIGITS <= len(digits) <= _SHAPE_MAX_DIGITS:
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


def _phones_by_shape(text: str) -> Iterator[PiiSpan]:
    for match in _PHONE_SHAPE_RE.finditer(text):
        before = text[max(0, match.start() - 30) : match.start()]
        if _phone_shape_ok(match.group("number"), before) and not _looks_like_isbn(
            match.group("number")
        ):
            yield PiiSpan(PHONE_NUMBER, match.start(), match.end(), match.group())


def _phones(text: str, regions: Sequence[str]) -> Iterator[PiiSpan]:
    seen: set[tuple[int, int]] = set()
    for match in _phone_matches(text, regions):
        if (match.start, match.end) in seen:
            continue
        seen.add((match.start, match.end))
        before = text[max(0, match.start - 30) : match.start]
        if _NOT_PHONE_CONTEXT_RE.search(before) and not _PHONE_CONTEXT_RE.search(before):
            continue
        if _looks_like_isbn(match.raw_string):
            continue
        yield PiiSpan(PHONE_NUMBER, match.start, match.end, match.raw_string)


# --- finding and redacting -----------------------------------------------------


def pii_find(text: str, *, phone_regions: Sequence[str] | None = None) -> list[PiiSpan]:
    """The PII spans of ``text``, ordered and non-overlapping.

    ``phone_regions`` (ISO 3166 codes) replaces ``CAIRN_PII_PHONE_REGIONS`` for
    the national phone formats. Where recognisers disagree, the longer span wins,
    then the more specific type (a Luhn-valid card over the phone number it also
    resembles).
    """
    regions = (
        configured_phone_regions()
        if phone_regions is None
        else _known_regions(tuple(phone_regions))
    )
    candidates = [
        *_emails(text),
        *_ibans(text),
        *_cards(text),
        *_ssns(text),
        *_ips(text),
        *_phones(text, regions),
        *_phones_by_shape(text),
    ]
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


def pii_redact(
    text: str,
    *,
    mapping: dict[str, str] | None = None,
    phone_regions: Sequence[str] | None = None,
) -> Redaction:
    """Replace every PII span of ``text`` with a placeholder such as ``[EMAIL_1]``.

    ``mapping`` (placeholder -> value) is extended in place and returned as the
    redaction's ``placeholders``: pass one dict for all the texts of one prompt so
    that a value keeps its placeholder across question, history and passages.
    ``phone_regions`` as for `pii_find`.
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
    for span in pii_find(text, phone_regions=phone_regions):
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


def _redacted(value: object, redact: Callable[[str], str]) -> object:
    """``value`` with PII redacted from its strings (also inside lists, tuples and dicts)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(item, redact) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item, redact) for key, item in value.items()}
    return value


class PiiLogFilter(logging.Filter):
    """Redact PII from log records: the formatted message, the ``extra`` fields that are
    text (a JSON formatter writes them out) and any traceback text.

    The message is formatted here (``msg % args``) and the record keeps only the
    redacted result, so handlers and formatters further on never see the values.
    Install it on handlers (``"filters": ["pii"]`` in ``LOGGING``) to cover
    records from every logger. Subclasses may keep some values by overriding ``redact``.
    """

    def redact(self, text: str, record: logging.LogRecord) -> str:
        """``text``, a piece of ``record``, with its PII replaced by placeholders."""
        return pii_redact(text).text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logged as is, still redacted
            message = f"{record.msg} {record.args}" if record.args else str(record.msg)
        redacted = self.redact(message, record)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, record)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, record)
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}
        for key, value in extras.items():
            if isinstance(value, str | list | tuple | dict):
                setattr(record, key, _redacted(value, lambda text: self.redact(text, record)))
        return True
