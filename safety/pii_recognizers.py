"""The Presidio recognizers behind `safety.pii`: one per kind of personal data, each a candidate
pattern followed by a validity check.

A pattern alone matches far too much, so every recognizer checks what it found before reporting
it: a payment card must pass the Luhn checksum and have a length its brand issues (spaces, dashes
and dots between digit groups are allowed); an IBAN must have its country's length and pass the
ISO 7064 mod-97 check (in any letter case); an SSN must not use a never-issued area, group or
serial, and nine bare digits count only after "SSN" or "social security"; an IP address must parse
and must not follow a version word ("firmware 3.10.2.8"); phone numbers are whatever Google's
`phonenumbers` matcher finds valid in one of `PHONE_REGIONS` (bare digit runs, which are mostly
order and tracking numbers, only after a phone word); e-mail addresses may be non-ASCII
(`jürgen.weiß@gmx.de`) or written out (`john dot doe at gmail dot com`).

Names come from the spaCy model's NER (`PERSON` only; places, dates and organisations are not
personal data by themselves and are left alone). Street addresses are a pattern recognizer for
house-number + street-type forms in English, German, French, Spanish and Italian, UK postcodes and
US "City, ST 12345"; a free-form address without those markers is not found.

This module does not decide what is redacted or how; `safety.pii` does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

import phonenumbers

__all__ = [
    "ENTITY_OF",
    "PHONE_REGIONS",
    "card_brand",
    "iban_valid",
    "luhn_valid",
    "pattern_recognizers",
    "ssn_valid",
]

# ---------------------------------------------------------------- validity checks


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment cards: double every second digit from the right."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# (prefixes, allowed lengths) per brand; a number outside all of them is not a card we recognise.
_CARD_BRANDS: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...] = (
    ("visa", ("4",), (13, 16, 19)),
    ("mastercard", tuple(str(p) for p in (*range(51, 56), *range(2221, 2721))), (16,)),
    ("amex", ("34", "37"), (15,)),
    ("discover", ("6011", "65", *(str(p) for p in range(644, 650))), (16, 19)),
    ("diners", ("36", "38", "300", "301", "302", "303", "304", "305"), (14, 16)),
    ("jcb", tuple(str(p) for p in range(3528, 3590)), (16, 19)),
    ("unionpay", ("62",), (16, 17, 18, 19)),
)


def card_brand(digits: str) -> str | None:
    for brand, prefixes, lengths in _CARD_BRANDS:
        if len(digits) in lengths and digits.startswith(prefixes):
            return brand
    return None


# IBAN lengths per country (ISO 13616 registry).
# fmt: off
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
# fmt: on


def iban_valid(iban: str) -> bool:
    """Country length and ISO 7064 mod-97: move the first four characters to the end, map letters
    to 10..35, and the resulting number must leave remainder 1 when divided by 97."""
    compact = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit() or not compact.isalnum():
        return False
    if not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 000, 666 and 900-999 are never issued, nor group 00 or serial 0000.
    078-05-1120 (printed on a wallet insert in 1938) is excluded too."""
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    return (area, group, serial) != ("078", "05", "1120")


# ---------------------------------------------------------------- finders: text -> (start, end)

_Finder = Callable[[str], Iterable[tuple[int, int]]]


def _before(text: str, start: int, width: int = 32) -> str:
    return text[max(0, start - width) : start].lower()


_EMAIL = re.compile(r"(?<![\w.+%-])[\w.%+-][\w.%+'-]*@(?:[\w-]+\.)+[^\W\d_]{2,}(?![\w-])")
# Written-out addresses: "john dot doe at gmail dot com", "jo (at) example (dot) org".
_AT = r"(?:\s*[(\[{<]\s*at\s*[)\]}>]\s*|\s+at\s+)"
_DOT = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+|\.)"
_TLDS = r"(?:com|org|net|edu|gov|io|co|de|uk|fr|es|it|nl|ch|at|eu|info|biz|me|us|ca|au|in|br|jp)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.])(?P<local>[\w+-]+(?:{_DOT}[\w+-]+)*){_AT}(?P<domain>[\w-]+(?:{_DOT}[\w-]+)*){_DOT}{_TLDS}\b",
    re.IGNORECASE,
)
_EMAIL_WORDS = ("mail", "contact", "reach me", "write to", "address", "send")


def _emails(text: str) -> Iterable[tuple[int, int]]:
    yield from (m.span() for m in _EMAIL.finditer(text))
    for m in _OBFUSCATED_EMAIL.finditer(text):
        whole = m.group().lower()
        # A plain " at " with a one-word local part reads as prose ("I looked at google dot com"):
        # it counts only with a bracketed at, a dotted/digit local part, or an e-mail word before it.
        strong = any(b in whole for b in ("(at)", "[at]", "{at}", "<at>")) or re.search(
            rf"{_DOT}|\d|_", m.group("local"), re.IGNORECASE
        )
        if strong or any(w in _before(text, m.start(), 40) for w in _EMAIL_WORDS):
            yield m.span()


_CARD = re.compile(r"(?<![\d.,-])\d(?:[ .-]?\d){12,30}(?![\d-])")


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD.finditer(text):
        # The candidate may glue a card to neighbouring digit groups ("+1 4111 1111 1111 1111"):
        # try runs of whole groups, leftmost and longest first.
        groups = [(g.start() + m.start(), g.end() + m.start()) for g in re.finditer(r"\d+", m.group())]
        i = 0
        while i < len(groups):
            for j in range(len(groups), i, -1):
                start, end = groups[i][0], groups[j - 1][1]
                digits = re.sub(r"[ .-]", "", text[start:end])
                if 13 <= len(digits) <= 19 and luhn_valid(digits) and card_brand(digits):
                    yield start, end
                    i = j
                    break
            else:
                i += 1


_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        length = _IBAN_LENGTHS.get(m.group()[:2].upper())
        if length is None:
            continue
        # The candidate may run on into following words ("... 00 EUR"); cut it at the country's
        # length, counted without spaces.
        seen, end = 0, m.start()
        for offset, char in enumerate(m.group()):
            if char != " ":
                seen += 1
            if seen == length:
                end = m.start() + offset + 1
                break
        if seen == length and iban_valid(text[m.start() : end]):
            yield m.start(), end


_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_BARE = re.compile(r"(?<![\d-])(\d{3})(\d{2})(\d{4})(?![\d-])")
_SSN_WORDS = re.compile(r"\b(?:ssn|social security(?: number| no\.?| #)?)\s*[:#]?\s*$", re.IGNORECASE)


def _ssns(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield m.span()
    for m in _SSN_BARE.finditer(text):
        if ssn_valid(*m.groups()) and _SSN_WORDS.search(text[max(0, m.start() - 40) : m.start()]):
            yield m.span()


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
# A dotted quad right after one of these is a version number, not an address.
_VERSION_WORDS = re.compile(
    r"(?:\b(?:version|ver|firmware|fw|build|release|rel|patch|update|kernel|driver|bios|app|sdk|"
    r"api|os|ios|android|chrome|firefox|edge|safari|windows|macos|python|node|java|package|v)\.?|"
    r"\bv)\s*:?\s*$",
    re.IGNORECASE,
)


_VERSION_AFTER = re.compile(r"^\s*(?:update|upgrade|release|build|version|patch|firmware|hotfix)\b", re.IGNORECASE)


def _ips(text: str) -> Iterable[tuple[int, int]]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())  # rejects octets > 255 and leading zeros
        except ValueError:
            continue
        if _VERSION_WORDS.search(text[max(0, m.start() - 24) : m.start()]) or _VERSION_AFTER.match(text[m.end() :]):
            continue
        yield m.span()
    for m in _IPV6.finditer(text):
        candidate = m.group()
        if not any(c in "0123456789abcdefABCDEF" for c in candidate):
            continue  # a bare "::" is punctuation more often than an address
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield m.span()


# National formats need a region to be parsed; numbers written with "+" parse in any of them.
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CH", "AT", "IE", "AU", "IN")
_PHONE_WORDS = re.compile(
    r"\b(?:phone|call|ring|tel|telephone|mobile|cell|fax|whatsapp|sms|text me|number|nummer|telefon|handy|"
    r"mobil|téléphone|teléfono)\b[^\n]{0,24}$",
    re.IGNORECASE,
)
_NOT_PHONE_WORDS = re.compile(
    r"\b(?:order|tracking|invoice|ticket|case|ref|reference|isbn|serial|account|sku|item|part|"
    r"bestellung|rechnung)\b[^\n]{0,16}$",
    re.IGNORECASE,
)


def _phones(text: str) -> Iterable[tuple[int, int]]:
    if sum(c.isdigit() for c in text) < 7:
        return
    seen: set[tuple[int, int]] = set()
    # Written with a country code, a number of the right length counts even where the plan does
    # not assign it yet (and the fictional ranges used in examples, +44 7700 900xxx).
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE):
        if match.raw_string.startswith("+"):
            seen.add((match.start, match.end))
            yield match.start, match.end
    for region in PHONE_REGIONS:
        # Strict grouping: the digits must be grouped as that country writes them, so "666-12-3456"
        # (an SSN's shape) is not a Spanish mobile number.
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.STRICT_GROUPING):
            span = (match.start, match.end)
            if span in seen or _SSN.fullmatch(match.raw_string):
                continue
            seen.add(span)
            before = text[max(0, match.start - 40) : match.start]
            if _NOT_PHONE_WORDS.search(before) and not match.raw_string.startswith("+"):
                continue
            # Bare digit runs are mostly order, tracking and account numbers: only after a phone word.
            if match.raw_string.isdigit() and not _PHONE_WORDS.search(before):
                continue
            yield span


_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|court|ct|way|place|pl|square|sq|"
    r"terrace|close|crescent|parkway|pkwy|highway|hwy|gardens|grove|mews|row|walk"
)
_STREET_EN = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Z][\w'’.-]*\s+){{1,4}}(?i:{_STREET_TYPES})\b\.?"
    r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?(?:,?\s+(?i:apt|apartment|suite|unit|flat|#)\.?\s*\w+)?"
)
_STREET_DE = re.compile(
    r"\b(?:(?:Am|An der|Im|In der|Auf der|Zum|Zur|Unter den)\s+)?[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee)"
    r"\s+\d{1,4}(?:\s?[a-z]\b)?(?:,?\s+\d{5}(?=\s+[A-ZÄÖÜ]))?"
)
# French ("15 Rue de Rivoli"), Spanish and Italian ("Calle Mayor 10", "Via Roma 1") street forms.
_STREET_FR = re.compile(
    r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai)\s+"
    r"(?:(?:de la|de l'|du|des|de|d')\s?)?[A-ZÉ][\w'’-]+(?:\s+[A-ZÉ][\w'’-]+){0,3}"
)
_STREET_ES_IT = re.compile(
    r"\b(?:Calle|C/|Avenida|Avda\.|Plaza|Paseo|Carrer|Via|Viale|Piazza|Corso)\s+(?:(?:de la|del|de|della|di)\s+)?"
    r"[A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+){0,3},?\s+(?:n\.?\s?º?\s?)?\d{1,4}\b"
)
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b")
_US_STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"
).split()
_US_ZIP = re.compile(
    rf"\b(?:[A-Z][a-z]+(?:\s[A-Z][a-z]+){{0,2}},\s)(?:{'|'.join(_US_STATES)})\s+\d{{5}}(?:-\d{{4}})?\b"
)


def _addresses(text: str) -> Iterable[tuple[int, int]]:
    for pattern in (_STREET_EN, _STREET_DE, _STREET_FR, _STREET_ES_IT, _UK_POSTCODE, _US_ZIP):
        yield from (m.span() for m in pattern.finditer(text))


# ---------------------------------------------------------------- recognizers

# Arbiter's kind -> Presidio entity name (Presidio's own names where it has one).
ENTITY_OF: dict[str, str] = {
    "email": "EMAIL_ADDRESS",
    "card": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ssn": "US_SSN",
    "ip": "IP_ADDRESS",
    "phone": "PHONE_NUMBER",
    "address": "STREET_ADDRESS",
    "person": "PERSON",
}

_FINDERS: dict[str, _Finder] = {
    "email": _emails,
    "card": _cards,
    "iban": _ibans,
    "ssn": _ssns,
    "ip": _ips,
    "phone": _phones,
    "address": _addresses,
}


def pattern_recognizers() -> list:
    """One Presidio recognizer per kind that needs no model (everything but `person`). Presidio is
    imported here, not with the module: it pulls in spaCy, which a CLI call must not wait for."""
    from presidio_analyzer import LocalRecognizer, RecognizerResult

    class CheckedRecognizer(LocalRecognizer):
        """A recognizer for one entity whose candidates already passed their validity check, so
        every result has score 1.0."""

        def __init__(self, kind: str, finder: _Finder) -> None:
            self._finder = finder
            super().__init__(supported_entities=[ENTITY_OF[kind]], name=f"arbiter-{kind}", supported_language="en")

        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:  # noqa: ANN001
            entity = self.supported_entities[0]
            if entity not in entities:
                return []
            return [RecognizerResult(entity, start, end, 1.0) for start, end in set(self._finder(text))]

    return [CheckedRecognizer(kind, finder) for kind, finder in _FINDERS.items()]
