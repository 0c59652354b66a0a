"""Every rule of the shipped rule sets, as tables of contexts/outputs and the expected verdicts.

The layer here has no moderator, so each verdict is the rules' alone. The last test checks that
the tables exercise every shipped rule, so adding a rule without a case here fails."""

from __future__ import annotations

import pytest

from safety import SafetyLayer, shipped_rulesets

RULESETS = shipped_rulesets()
LAYER = SafetyLayer(RULESETS, moderator=None)
ALL_TEAMS = ("billing", "technical", "account", "shipping", "sales", "tier2", "legal")
EXERCISED: set[str] = set()


def ticket(
    body: str = "My invoice looks wrong",
    subject: str = "Question",
    tier: str = "standard",
    loads: dict[str, int] | None = None,
    **extra,
) -> dict:
    """A context in the shape of policies/decision_types/ticket-routing.yaml, plus team loads."""
    teams = {team: {"load": 3, "capacity": 10} for team in ALL_TEAMS}
    for team, load in (loads or {}).items():
        teams[team]["load"] = load
    return {"subject": subject, "body": body, "customer": {"tier": tier}, "teams": teams, **extra}


def without(*teams: str) -> tuple[str, ...]:
    return tuple(t for t in ALL_TEAMS if t not in teams)


@pytest.mark.parametrize(
    ("context", "allowed", "rules"),
    [
        (ticket(), ALL_TEAMS, set()),
        (ticket(body="My lawyer will be in touch."), ("legal",), {"legal-only"}),
        (ticket(subject="LAWSUIT incoming"), ("legal",), {"legal-only"}),
        (ticket(body="We are considering legal action"), ("legal",), {"legal-only"}),
        (ticket(body="I will pursue this with billing"), ALL_TEAMS, set()),  # "sue" inside a word
        (ticket(loads={"billing": 10}), without("billing"), {"team-at-capacity"}),
        (
            ticket(loads={"billing": 12, "technical": 10}),
            without("billing", "technical"),
            {"team-at-capacity"},
        ),
        (ticket(loads={"billing": 9}), ALL_TEAMS, set()),
        (ticket(tier="vip"), ("tier2",), {"vip-to-tier2"}),
        (ticket(mentions_legal_action=True), ("legal",), {"legal-only"}),
        (ticket(mentions_legal_action=False), ALL_TEAMS, set()),
        (ticket(tier="vip", body="my attorney says"), ("legal",), {"legal-only"}),  # legal beats VIP
        (ticket(tier="vip", loads={"tier2": 10}), (), {"vip-to-tier2", "team-at-capacity"}),
        ({"subject": "no teams or customer in the context"}, ALL_TEAMS, set()),
    ],
)
def test_ticket_routing_masks(context, allowed, rules):
    assert LAYER.allowed_actions("ticket-routing", context=context) == allowed
    verdict = LAYER.check_input("ticket-routing", context=context, actions=ALL_TEAMS)
    assert verdict.allowed_actions == allowed
    assert set(verdict.rule_ids()) == rules
    assert set(verdict.masked_actions) == set(ALL_TEAMS) - set(allowed)
    expected = "allow" if not rules else ("escalate" if not allowed else "mask")
    assert verdict.outcome == expected
    assert verdict.needs_review == (expected == "escalate")
    EXERCISED.update(rules)


def test_vip_rule_stands_aside_without_a_tier2_team():
    # A deployment whose teams lack tier 2: VIP tickets are routed normally, not escalated.
    candidates = ("billing", "technical", "legal")
    verdict = LAYER.check_input("ticket-routing", context=ticket(tier="vip"), actions=candidates)
    assert verdict.outcome == "allow" and verdict.allowed_actions == candidates


@pytest.mark.parametrize(
    ("context", "action", "outcome", "codes"),
    [
        (ticket(refund_amount=1500), "billing", "escalate", ["large-refund-review"]),
        (ticket(refund_amount=1000), "billing", "allow", []),  # "gt", not "gte"
        (ticket(refund_amount=1500), "technical", "allow", []),
        (ticket(), "billing", "allow", []),  # no refund_amount in the context
        # The policy proposed a masked team: the verdict masks it and says which teams remain.
        (ticket(body="see you in court"), "billing", "mask", ["legal-only", "action-masked"]),
        (ticket(loads={"billing": 10}), "billing", "mask", ["team-at-capacity", "action-masked"]),
        # tier2 itself is masked by capacity; the VIP rule masked the rest, so nothing is left.
        (
            ticket(tier="vip", loads={"tier2": 10}),
            "tier2",
            "escalate",
            ["team-at-capacity", "action-masked", "no-allowed-action"],
        ),
        (ticket(), "marketing", "block", ["unknown-action"]),
    ],
)
def test_ticket_routing_outputs(context, action, outcome, codes):
    verdict = LAYER.check_output("ticket-routing", context=context, action=action)
    assert verdict.outcome == outcome
    assert [r.code for r in verdict.reasons] == codes
    assert verdict.action == action
    if outcome == "mask":
        assert action in verdict.masked_actions and action not in verdict.allowed_actions
        assert verdict.allowed_actions
    EXERCISED.update(c for c in codes if c in {r.id for r in RULESETS["ticket-routing"].rules})


LONG = "word " * 800  # 4000 characters


@pytest.mark.parametrize(
    ("text", "outcome", "rules", "delivered"),
    [
        ("Your order ships tomorrow.", "allow", [], "Your order ships tomorrow."),
        (
            "Reach us at jo@example.com or 212-555-0143.",
            "redact",
            ["no-pii"],
            "Reach us at [EMAIL] or [PHONE].",
        ),
        ("Card on file: 4111 1111 1111 1111", "redact", ["no-pii"], "Card on file: [CARD]"),
        ("Reference 4111 1111 1111 1112", "allow", [], "Reference 4111 1111 1111 1112"),  # fails Luhn
        ("This fund has GUARANTEED RETURNS!", "block", ["forbidden-terms"], None),
        ("Our guaranteed return window is 30 days", "allow", [], None),  # not the forbidden phrase
        ("Docs: https://help.example.com/refunds.", "allow", [], "Docs: https://help.example.com/refunds."),
        ("Docs: https://evil.io/refunds.", "redact", ["links-allow-list"], "Docs: [LINK]."),
        ("Try www.example.com.evil.io now", "redact", ["links-allow-list"], "Try [LINK] now"),
        ("Try https://notexample.com", "redact", ["links-allow-list"], "Try [LINK]"),
        (LONG, "allow", [], LONG),
        (LONG + "x", "block", ["length-limit"], None),
        (
            "Mail jo@example.com, see https://evil.io, guaranteed returns",
            "block",
            ["no-pii", "forbidden-terms", "links-allow-list"],
            "Mail [EMAIL], see [LINK], guaranteed returns",
        ),
    ],
)
def test_content_outputs(text, outcome, rules, delivered):
    verdict = LAYER.check_output("content", text=text)
    assert verdict.outcome == outcome
    assert verdict.rule_ids() == rules
    if delivered is not None:
        assert verdict.text == delivered
    assert verdict.deliverable == (outcome in ("allow", "redact"))
    assert verdict.ruleset_hash == RULESETS["content"].hash
    EXERCISED.update(rules)


@pytest.mark.parametrize(
    ("text", "outcome", "delivered"),
    [
        ("My card 5555 5555 5555 4444 was charged twice", "redact", "My card [CARD] was charged twice"),
        ("My IBAN is DE89 3704 0044 0532 0130 00", "redact", "My IBAN is [IBAN]"),
        ("Why was I charged twice?", "allow", "Why was I charged twice?"),
    ],
)
def test_content_inputs(text, outcome, delivered):
    verdict = LAYER.check_input("content", text=text)
    assert verdict.outcome == outcome and verdict.text == delivered
    EXERCISED.update(verdict.rule_ids())


def test_tables_cover_every_shipped_rule():
    # Runs last in this module (pytest keeps definition order).
    shipped = {rule.id for ruleset in RULESETS.values() for rule in ruleset.rules}
    assert shipped - EXERCISED == set()
