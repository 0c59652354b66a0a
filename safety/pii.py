"""Detect and redact personal data: e-mail, phone numbers, payment cards, IBANs, US SSNs, IP addresses.

Each detector is a candidate regular expression followed by a validity check, because a pattern
alone matches far too much: a payment card must pass the Luhn checksum and have a length its
brand issues, an IBAN must have its country's length and pass the ISO 7064 mod-97 check, an SSN
must not use the never-issued area/group/serial numbers, IP addresses must parse. When two
detections overlap, the one found by the earlier detector in `DETECTORS` wins (a card number is
not also reported as a phone number).

Redaction replaces each detection with a typed placeholder ("[EMAIL]", "[CARD]", ...), so the
redacted text still reads naturally and reviewers see what kind of data was removed.

This module does not detect names or street addresses (that needs a model) and does not decide
whether redaction is required; rule sets (`safety.rules`) do.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "PII_KINDS",
    "PLACEHOLDERS",
    "PIIMatch",
    "Span",
    "apply_redactions",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "redact_pii",
    "ssn_valid",
]


@dataclass(frozen=True, order=True)
class Span:
    """A half-open character range [start, end) of a text and the placeholder label it gets."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class PIIMatch:
    kind: str  # one of PII_KINDS
    start: int
    end: int
    text: str

    def span(self) -> Span:
        return Span(self.start, self.end, PLACEHOLDERS[self.kind])


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
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 000, 666 and 900-999 are never issued, nor group 00 or serial 0000.
    078-05-1120 (printed on a wallet insert in 1938) is excluded too."""
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    return (area, group, serial) != ("078", "05", "1120")


# ---------------------------------------------------------------- detectors

# Each detector yields (start, end) of valid matches in the text.
_Detector = Callable[[str], Iterable[tuple[int, int]]]

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,60}(?![\d-])")  # cut to 13-19 digits in _cards
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
# Phones need structure (a leading + or separators/parentheses) so bare digit runs such as order
# numbers do not count; North American numbers must have valid area and exchange codes.
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w-])")
_PHONE_NANP = re.compile(
    r"(?<![\w+])(?:1[ .-])?(?:\(([2-9]\d{2})\) ?|([2-9]\d{2})[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)


def _emails(text: str) -> Iterable[tuple[int, int]]:
    return (m.span() for m in _EMAIL.finditer(text))


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD.finditer(text):
        # The candidate may glue a card to neighbouring digit groups ("+1 4111 1111 1111 1111"):
        # try runs of whole groups, leftmost and longest first.
        groups = [(g.start() + m.start(), g.end() + m.start()) for g in re.finditer(r"\d+", m.group())]
        i = 0
        while i < len(groups):
            for j in range(len(groups), i, -1):
                start, end = groups[i][0], groups[j - 1][1]
                digits = re.sub(r"[ -]", "", text[start:end])
                if 13 <= len(digits) <= 19 and luhn_valid(digits) and card_brand(digits):
                    yield start, end
                    i = j
                    break
            else:
                i += 1


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        length = _IBAN_LENGTHS.get(m.group()[:2])
        if length is None:
            continue
        # The candidate may run on into following upper-case words ("... 00 EUR"); cut it at the
        # country's length, counted without spaces.
        seen, end = 0, m.start()
        for offset, char in enumerate(m.group()):
            if char != " ":
                seen += 1
            if seen == length:
                end = m.start() + offset + 1
                break
        if seen == length and iban_valid(text[m.start() : end]):
            yield m.start(), end


def _ssns(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield m.span()


def _phones(text: str) -> Iterable[tuple[int, int]]:
    for m in _PHONE_INTL.finditer(text):
        if 8 <= sum(c.isdigit() for c in m.group()) <= 15:
            yield m.span()
    yield from (m.span() for m in _PHONE_NANP.finditer(text))


def _ips(text: str) -> Iterable[tuple[int, int]]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())  # rejects octets > 255 and leading zeros
        except ValueError:
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


# Order is priority on overlap: checksummed detectors first, the loosest (phone) last.
DETECTORS: dict[str, _Detector] = {
    "email": _emails,
    "card": _cards,
    "iban": _ibans,
    "ssn": _ssns,
    "ip": _ips,
    "phone": _phones,
}
PII_KINDS: tuple[str, ...] = tuple(DETECTORS)
PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ssn": "[SSN]",
    "ip": "[IP]",
    "phone": "[PHONE]",
}


def find_pii(text: str, kinds: Sequence[str] | None = None) -> list[PIIMatch]:
    """All non-overlapping detections of the given kinds (default: all), in text order.

    Example:
        >>> [(m.kind, m.text) for m in find_pii("mail jo@example.com or call (212) 555-0143")]
        [('email', 'jo@example.com'), ('phone', '(212) 555-0143')]
    """
    wanted = PII_KINDS if kinds is None else tuple(kinds)
    unknown = set(wanted) - set(PII_KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(PII_KINDS)}")
    taken: list[tuple[int, int]] = []
    found: list[PIIMatch] = []
    for kind in PII_KINDS:  # priority order, whatever order the caller asked in
        if kind not in wanted:
            continue
        for start, end in DETECTORS[kind](text):
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append(PIIMatch(kind, start, end, text[start:end]))
    return sorted(found, key=lambda m: m.start)


def apply_redactions(text: str, spans: Iterable[Span]) -> str:
    """Replace each span with its label. Overlapping spans merge and keep the first one's label."""
    merged: list[Span] = []
    for span in sorted(spans):
        if not 0 <= span.start <= span.end <= len(text):
            raise ValueError(f"span {span} outside text of length {len(text)}")
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end), last.label)
        else:
            merged.append(span)
    pieces, cursor = [], 0
    for span in merged:
        pieces.append(text[cursor : span.start])
        pieces.append(span.label)
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def redact_pii(text: str, kinds: Sequence[str] | None = None) -> tuple[str, list[PIIMatch]]:
    """The text with every detection replaced by its placeholder, and the detections.

    Example:
        >>> redact_pii("card 4111 1111 1111 1111, ssn 123-45-6789")[0]
        'card [CARD], ssn [SSN]'
    """
    matches = find_pii(text, kinds)
    return apply_redactions(text, (m.span() for m in matches)), matches
