"""Known-answer tests for the PII detectors, including near misses that must not match.

The valid numbers are the published test values (Visa/Mastercard/Amex test cards, the IBAN
examples of the ISO 13616 registry); each near miss breaks exactly one validity rule."""

from __future__ import annotations

import pytest

from safety.pii import (
    PII_KINDS,
    Span,
    apply_redactions,
    find_pii,
    iban_valid,
    luhn_valid,
    redact_pii,
    ssn_valid,
)


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        (
            "write to jane.doe+tickets@mail.example.co.uk today",
            "email",
            "jane.doe+tickets@mail.example.co.uk",
        ),
        ("call (212) 555-0143 now", "phone", "(212) 555-0143"),
        ("call 415.555.2671", "phone", "415.555.2671"),
        ("call +44 20 7946 0958", "phone", "+44 20 7946 0958"),
        ("tel +1 (415) 555-2671", "phone", "+1 (415) 555-2671"),
        ("visa 4111 1111 1111 1111 exp 12/30", "card", "4111 1111 1111 1111"),
        ("mc 5555-5555-5555-4444", "card", "5555-5555-5555-4444"),
        ("amex 378282246310005", "card", "378282246310005"),
        ("iban DE89 3704 0044 0532 0130 00 EUR", "iban", "DE89 3704 0044 0532 0130 00"),
        ("iban GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("ssn 123-45-6789.", "ssn", "123-45-6789"),
        ("from 192.168.1.20.", "ip", "192.168.1.20"),
        ("host 2001:db8::8a2e:370:7334 down", "ip", "2001:db8::8a2e:370:7334"),
        ("link-local fe80::1", "ip", "fe80::1"),
    ],
)
def test_detects(text, kind, found):
    matches = find_pii(text)
    assert [(m.kind, m.text) for m in matches] == [(kind, found)]
    assert text[matches[0].start : matches[0].end] == found


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ref 4111111111111112", "16 digits, Luhn fails (last digit off by one)"),
        ("ref 4111 1111 1111 1112", "grouped like a card, Luhn fails"),
        ("ref 1234567812345670", "passes Luhn but no card brand starts with 12"),
        ("iban DE89 3704 0044 0532 0130 01", "mod-97 fails (last digit changed)"),
        ("iban DE89370400440532013", "one character short of Germany's 22"),
        ("ssn 000-12-3456", "area 000 is never issued"),
        ("ssn 666-12-3456", "area 666 is never issued"),
        ("ssn 912-12-3456", "area 900-999 is never issued"),
        ("ssn 123-00-4567", "group 00 is never issued"),
        ("ssn 123-45-0000", "serial 0000 is never issued"),
        ("call 555-123-4567", "exchange code cannot start with 1"),
        ("order 2125550143", "bare digits without phone structure"),
        ("version 1.2.3.4.5", "five dotted numbers are not an IPv4 address"),
        ("addr 256.1.1.1", "octet above 255"),
        ("meet at 12:30:45", "a time, not an IPv6 address"),
        ("mail jo@localhost", "no top-level domain"),
    ],
)
def test_near_misses_do_not_match(text, why):
    assert find_pii(text) == [], why


def test_checks_directly():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert ssn_valid("123", "45", "6789") and not ssn_valid("078", "05", "1120")


def test_card_wins_over_phone_on_overlap():
    # "+378282246310005" is also a well-formed international phone number (15 digits after a
    # "+"); it is a valid Amex number, and the checksummed detector runs first and claims it.
    assert [m.kind for m in find_pii("pay +378282246310005")] == ["card"]
    assert [m.kind for m in find_pii("pay +378282246310005", ["phone"])] == ["phone"]


def test_card_glued_to_other_digits_is_still_found():
    matches = find_pii("ref 12 4111 1111 1111 1111 and 5555555555554444")
    assert [(m.kind, m.text) for m in matches] == [
        ("card", "4111 1111 1111 1111"),
        ("card", "5555555555554444"),
    ]


def test_redaction_uses_typed_placeholders():
    text = "Jo (jo@example.com, 212-555-0143) paid with 4111-1111-1111-1111 from 10.0.0.7, ssn 123-45-6789."
    redacted, matches = redact_pii(text)
    assert redacted == "Jo ([EMAIL], [PHONE]) paid with [CARD] from [IP], ssn [SSN]."
    assert [m.kind for m in matches] == ["email", "phone", "card", "ip", "ssn"]


def test_kind_filter_and_unknown_kind():
    text = "jo@example.com 212-555-0143"
    assert [m.kind for m in find_pii(text, ["phone"])] == ["phone"]
    with pytest.raises(ValueError, match="unknown PII kinds"):
        find_pii(text, ["passport"])
    assert set(PII_KINDS) == {"email", "phone", "card", "iban", "ssn", "ip"}


def test_apply_redactions_merges_overlaps_and_rejects_bad_spans():
    assert apply_redactions("abcdef", [Span(1, 3, "[X]"), Span(2, 5, "[Y]")]) == "a[X]f"
    with pytest.raises(ValueError, match="outside text"):
        apply_redactions("abc", [Span(2, 9, "[X]")])
