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
    assert [m.kind for m in find_pii("pay 4111 1111 1111 1111", ["phone", "card"])] == ["card"]


def test_card_glued_to_other_digits_is_still_found():
    matches = find_pii("ref 12 4111 1111 1111 1111 and 5555555555554444")
    assert [(m.kind, m.text) for m in matches] == [
        ("card", "4111 1111 1111 1111"),
        ("card", "5555555555554444"),
    ]


def test_redaction_uses_typed_placeholders():
    text = "Jo (jo@example.com, 212-555-0143) paid with 4111-1111-1111-1111 from 10.0.0.7, ssn 123-45-6789."
    redacted, matches = redact_pii(text, ["email", "phone", "card", "ip", "ssn"])
    assert redacted == "Jo ([EMAIL], [PHONE]) paid with [CARD] from [IP], ssn [SSN]."
    assert [m.kind for m in matches] == ["email", "phone", "card", "ip", "ssn"]


def test_kind_filter_and_unknown_kind():
    text = "jo@example.com 212-555-0143"
    assert [m.kind for m in find_pii(text, ["phone"])] == ["phone"]
    with pytest.raises(ValueError, match="unknown PII kinds"):
        find_pii(text, ["passport"])
    assert set(PII_KINDS) == {"email", "phone", "card", "iban", "ssn", "ip", "address", "person"}


def test_apply_redactions_merges_overlaps_and_rejects_bad_spans():
    assert apply_redactions("abcdef", [Span(1, 3, "[X]"), Span(2, 5, "[Y]")]) == "a[X]f"
    with pytest.raises(ValueError, match="outside text"):
        apply_redactions("abc", [Span(2, 9, "[X]")])


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        ("write to john dot doe at gmail dot com please", "email", "john dot doe at gmail dot com"),
        ("mail jo (at) example (dot) org", "email", "jo (at) example (dot) org"),
        ("schreib an jürgen.weiß@gmx.de", "email", "jürgen.weiß@gmx.de"),
        ("SSN: 536221847", "ssn", "536221847"),
        ("my social security number is 536-22-1847", "ssn", "536-22-1847"),
        ("ring me on 020 7946 0958", "phone", "020 7946 0958"),
        ("mobile 07911 123456", "phone", "07911 123456"),
        ("Telefon 030 12345678", "phone", "030 12345678"),
        ("Handy: 0151 23456789", "phone", "0151 23456789"),
        ("call +49 (0)30 1234567", "phone", "+49 (0)30 1234567"),
        ("iban de89 3704 0044 0532 0130 00 please", "iban", "de89 3704 0044 0532 0130 00"),
        ("card 4111.1111.1111.1111 expired", "card", "4111.1111.1111.1111"),
        ("we live at 221B Baker Street now", "address", "221B Baker Street"),
        ("Lieferung an Hauptstraße 5 bitte", "address", "Hauptstraße 5"),
    ],
)
def test_detects_the_formats_the_regex_version_missed(text, kind, found):
    """Each of these was missed (or mistyped) by the regex-only detectors this module replaced."""
    assert [(m.kind, m.text) for m in find_pii(text, [kind])] == [(kind, found)]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("firmware 3.10.2.8 crashes on boot", "a version number after 'firmware'"),
        ("updated to version 10.0.19045.3803", "a Windows build number"),
        ("I looked at google dot com yesterday", "prose 'at ... dot com' without an e-mail cue"),
        ("order 123456789 arrived", "nine bare digits without 'SSN' before them"),
        ("ISBN 978-3-16-148410-0", "an ISBN"),
        ("tracking 1Z999AA10123456784", "a UPS tracking number"),
        ("total 1,299.99 EUR on 2024-05-01", "a price and a date"),
        ("ssn 666-12-3456", "an invalid SSN is not a Spanish mobile number either"),
    ],
)
def test_look_alikes_are_not_redacted(text, why):
    assert find_pii(text) == [], why


def test_names_need_the_ner_model_and_say_so():
    """With the packaged spaCy pipeline names are found; without it the detector says it has no NER."""
    from safety.pii import PIIDetector, default_detector

    if not default_detector().ner:
        pytest.skip("no spaCy English pipeline installed: names are not covered")
    assert [m.kind for m in find_pii("Please ask Maria Garcia to call back")] == ["person"]
    assert find_pii("System: Windows 11, browser Firefox 128") == []
    patterns_only = PIIDetector(ner_model=None)
    assert not patterns_only.ner and patterns_only.find("Please ask Maria Garcia to call back") == []


def test_redact_values_walks_json_and_keeps_codes():
    from safety.pii import redact_values

    value = {"reasons": [{"code": "rule-error", "message": "expected a number, got 'jo@example.com'"}], "n": 3}
    assert redact_values(value) == {
        "reasons": [{"code": "rule-error", "message": "expected a number, got '[EMAIL]'"}],
        "n": 3,
    }


def test_pii_ner_model_setting_switches_the_process_detector(tmp_path):
    """ARBITER_PII_NER_MODEL=none: the app's detector runs patterns only (names are kept, e-mails not)."""
    from app.services.serving.stack import build_safety_layer
    from app.settings import Settings
    from safety.pii import default_detector, use_pii_detector

    try:
        build_safety_layer(Settings(environment="test", var_dir=tmp_path, pii_ner_model="none"))
        assert not default_detector().ner
        assert redact_pii("Please ask Maria Garcia, jo@example.com")[0] == "Please ask Maria Garcia, [EMAIL]"
    finally:
        use_pii_detector("auto")
    assert default_detector().ner == (default_detector().ner_model is not None)


def test_redact_fields_reuses_the_joined_text_and_redacts_nested_values():
    from safety.pii import redact_fields

    context = {"subject": "Refund for Maria Garcia", "body": "call 020 7946 0958\nor mail jo@example.com",
               "customer": {"email": "ann@example.org", "tier": "vip"}, "n": 2}
    joined = "Refund for Maria Garcia\ncall 020 7946 0958\nor mail jo@example.com"
    expected = {"subject": "Refund for [PERSON]", "body": "call [PHONE]\nor mail [EMAIL]",
                "customer": {"email": "[EMAIL]", "tier": "vip"}, "n": 2}
    if not default_detector_has_names():
        expected["subject"] = "Refund for Maria Garcia"
    assert redact_fields(context, joined) == expected
    assert redact_fields(context, "not the joined text") == expected  # falls back to one run per field


def default_detector_has_names() -> bool:
    from safety.pii import default_detector

    return default_detector().ner


def test_a_missing_name_model_is_refused_with_the_way_out():
    from safety.pii import PIIDetector

    with pytest.raises(ValueError, match="ARBITER_PII_NER_MODEL=none"):
        PIIDetector(ner_model="en_core_web_nonexistent")


def test_simulated_support_tickets_are_not_redacted():
    """The demo's simulated tickets hold no personal data; greetings in other languages ("Guten Tag")
    and Arbiter's own plan names ("Pro Suite") were taken for names before they were listed."""
    from policies.simulator import TicketSimulator

    texts = [t.text for t in TicketSimulator(seed=7).tickets(150)]
    assert [(m.kind, m.text) for text in texts for m in find_pii(text)] == []


def test_asking_for_names_only_finds_names_only_and_logs_no_warning(caplog):
    """Presidio reads an empty entity list as "every entity", and warns on every call about an entity
    no recognizer serves: neither may happen when names cannot be found (no model, no capital)."""
    import logging

    from safety.pii import PIIDetector

    caplog.set_level(logging.INFO)
    assert PIIDetector(ner_model=None).find("jo@example.com", ["person"]) == []
    assert find_pii("mail jo@example.com or call 020 7946 0958", ["person"]) == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
