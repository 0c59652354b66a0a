"""The rule engine itself: every operator, validation errors that name the rule and the field,
content hashing, and failing closed when a context cannot be evaluated."""

from __future__ import annotations

import pytest
import yaml

from safety import RuleEvaluationError, RuleSetError, SafetyLayer, parse_ruleset
from safety.conditions import parse_condition
from safety.rules import SHIPPED_DIR, build_scope, canonical_hash, evaluate_rules, load_ruleset

SCOPE = build_scope(
    {
        "customer": {"tier": "vip", "age_days": 40, "tags": ["beta", "press"], "note": None},
        "limits": {"max": 50},
        "items": [{"sku": "A1"}],
    },
    input_text="Hello, my number is 212-555-0143",
    output_action="billing",
    output_text="Visit https://shop.example.com or https://evil.io. Call now!",
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "context.customer.tier", "equals": "vip"}, True),
        ({"field": "context.customer.tier", "equals": "VIP"}, False),
        ({"field": "context.customer.tier", "not_equals": "standard"}, True),
        ({"field": "context.customer.tier", "in": ["vip", "enterprise"]}, True),
        ({"field": "context.customer.tier", "not_in": ["vip"]}, False),
        ({"field": "context.customer.tags", "contains": "beta"}, True),
        ({"field": "output.text", "contains": "Call now"}, True),
        ({"field": "context.customer.tags", "contains_any": ["PRESS", "vip"]}, True),
        ({"field": "output.text", "contains_any": ["call"]}, True),
        ({"field": "output.text", "contains_any": ["cal"]}, False),  # whole words only
        ({"field": "output.text", "regex": r"https?://\S+"}, True),
        ({"field": "context.customer.age_days", "gt": 40}, False),
        ({"field": "context.customer.age_days", "gte": 40}, True),
        ({"field": "context.customer.age_days", "lt": {"field": "context.limits.max"}}, True),
        ({"field": "context.customer.age_days", "lte": 39.5}, False),
        ({"field": "context.customer.age_days", "gt": {"field": "context.missing"}}, False),
        ({"field": "context.customer.tier", "exists": True}, True),
        ({"field": "context.customer.note", "exists": False}, True),  # null counts as missing
        ({"field": "context.nothing.here", "equals": None}, False),  # missing is never equal
        ({"field": "context.items.0.sku", "equals": "A1"}, True),
        ({"field": "input.text", "pii": ["phone"]}, True),
        ({"field": "input.text", "pii": ["email"]}, False),
        ({"field": "output.text", "links_outside": ["example.com"]}, True),
        ({"field": "output.text", "links_outside": ["example.com", "evil.io"]}, False),
        ({"field": "output.text", "longer_than": 20}, True),
        ({"field": "output.action", "equals": "billing"}, True),
        (
            {
                "all": [
                    {"field": "context.customer.tier", "equals": "vip"},
                    {"field": "output.action", "equals": "x"},
                ]
            },
            False,
        ),
        (
            {
                "any": [
                    {"field": "context.customer.tier", "equals": "x"},
                    {"field": "output.action", "equals": "billing"},
                ]
            },
            True,
        ),
        ({"not": {"field": "context.customer.tier", "equals": "vip"}}, False),
    ],
)
def test_operators(condition, expected):
    assert parse_condition(condition).evaluate(SCOPE).matched is expected


def test_any_collects_spans_from_every_matching_branch():
    condition = parse_condition(
        {
            "any": [
                {"field": "output.text", "links_outside": ["example.com"]},
                {"field": "output.text", "regex": "Call"},
            ]
        }
    )
    spans = [
        (field, SCOPE["output"]["text"][s.start : s.end]) for field, s in condition.evaluate(SCOPE).spans
    ]
    assert spans == [("output.text", "https://evil.io"), ("output.text", "Call")]


def ruleset_yaml(rules: str) -> dict:
    """A small rule set around `rules`, a YAML list of rules."""
    return {
        "name": "test",
        "decision_type": "test",
        "actions": ["a", "b"],
        "lists": {"bad": ["foo"]},
        "rules": yaml.safe_load(rules),
    }


@pytest.mark.parametrize(
    ("rule", "fragments"),
    [
        (
            "- {id: r1, stage: output, when: {field: output.text, regex: '('}, effect: block}",
            ["rule 'r1'", "when.regex", "invalid regular expression"],
        ),
        (
            "- {id: r2, stage: output, when: {field: output.text, gte: 'ten'}, effect: block}",
            ["rule 'r2'", "when.gte", "expected a number"],
        ),
        (
            "- {id: r3, stage: output, when: {field: output.text, startswith: x}, effect: block}",
            ["rule 'r3'", "unknown operator", "output.text"],
        ),
        (
            "- {id: r4, stage: output, when: {field: output.text, equals: 1, in: [1]}, effect: block}",
            ["rule 'r4'", "exactly one operator"],
        ),
        (
            (
                "- {id: r5, stage: output, effect: block,"
                "   when: {all: [{field: x, equals: 1}, {field: y, pii: [passport]}]}}"
            ),
            ["rule 'r5'", "when.all[1].pii", "passport"],
        ),
        (
            "- {id: r6, stage: output, when: {field: output.text, contains_any: $nope}, effect: block}",
            ["rule 'r6'", "when.contains_any", "unknown list '$nope'"],
        ),
        (
            "- {id: r7, stage: output, when: {field: output.text, equals: x}, effect: explode}",
            ["rule 'r7'", "effect.type", "explode"],
        ),
        (
            (
                "- {id: r8, stage: output, when: {field: output.text, equals: x},"
                "   effect: {type: mask, keep: [a]}}"
            ),
            ["rule 'r8'", "effect", "stage: input"],
        ),
        (
            "- {id: r9, stage: input, when: {field: context.x, equals: 1}, effect: {type: mask, keep: [zz]}}",
            ["rule 'r9'", "effect.keep", "unknown actions ['zz']"],
        ),
        (
            "- {id: r10, stage: output, when: {field: context.x, equals: 1}, effect: redact}",
            ["rule 'r10'", "effect", "output.text"],
        ),
        (
            (
                "- {id: r11, stage: input, effect: {type: mask, actions: [a]},"
                "   when: {field: 'context.teams.{action}.load', gt: 1}}"
            ),
            ["rule 'r11'", "for_each_action"],
        ),
        ("- {id: r12, stage: later, when: {field: x, equals: 1}, effect: block}", ["rule 'r12'", "stage"]),
        ("- {id: r13, stage: output, effect: block}", ["rule 'r13'", "when", "missing"]),
        (
            "- {id: Bad Id, stage: output, when: {field: x, equals: 1}, effect: block}",
            ["rule 'Bad Id'", "id"],
        ),
        (
            (
                "[{id: r14, stage: output, when: {field: x, equals: 1}, effect: block},"
                " {id: r14, stage: output, when: {field: x, equals: 2}, effect: block}]"
            ),
            ["rule 'r14'", "duplicate"],
        ),
    ],
)
def test_validation_errors_name_rule_and_field(rule, fragments):
    with pytest.raises(RuleSetError) as excinfo:
        parse_ruleset(ruleset_yaml(rule), source="test.yaml")
    message = str(excinfo.value)
    assert message.startswith("test.yaml: ")
    for fragment in fragments:
        assert fragment in message


def test_top_level_validation():
    with pytest.raises(RuleSetError, match="decision_type"):
        parse_ruleset({"name": "x", "rules": []})
    with pytest.raises(RuleSetError, match="unknown top-level keys"):
        parse_ruleset({"name": "x", "decision_type": "y", "rules": [], "rule": []})


def test_hash_is_of_content_not_formatting(tmp_path):
    shipped = SHIPPED_DIR / "content.yaml"
    original = load_ruleset(shipped)
    document = yaml.safe_load(shipped.read_text())
    assert original.hash == canonical_hash(document)

    # Same content, different formatting and key order, no comments: same version.
    reformatted = tmp_path / "content.yaml"
    reformatted.write_text(yaml.safe_dump(dict(reversed(list(document.items()))), default_flow_style=True))
    assert load_ruleset(reformatted).hash == original.hash

    # One changed limit: a new version.
    document["rules"][-1]["when"]["longer_than"] = 5000
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(document))
    assert load_ruleset(changed).hash != original.hash


def test_for_each_action_binds_the_action():
    ruleset = parse_ruleset(
        ruleset_yaml(
            "- {id: full, stage: input, for_each_action: true, "
            "when: {field: 'context.load.{action}', gte: {field: context.cap}}, effect: mask}"
        )
    )
    hits = evaluate_rules(ruleset, "input", build_scope({"load": {"a": 5, "b": 1}, "cap": 5}))
    assert [(h.rule_id, h.masked) for h in hits] == [("full", ("a",))]


def test_type_error_at_evaluation_names_rule_and_field_and_the_layer_fails_closed():
    ruleset = parse_ruleset(
        ruleset_yaml("- {id: big, stage: output, when: {field: context.amount, gt: 10}, effect: escalate}")
    )
    scope = build_scope({"amount": "lots"})
    with pytest.raises(RuleEvaluationError) as excinfo:
        evaluate_rules(ruleset, "output", scope)
    assert excinfo.value.rule_id == "big" and excinfo.value.field == "context.amount"

    verdict = SafetyLayer({"test": ruleset}, moderator=None).check_output("test", context={"amount": "lots"})
    assert verdict.outcome == "escalate"
    assert [r.code for r in verdict.reasons] == ["rule-error"]
    assert "context.amount" in verdict.errors[0]


def test_unknown_decision_type_is_a_clear_error():
    layer = SafetyLayer({}, moderator=None)
    with pytest.raises(KeyError, match="no rule set for decision type 'nope'"):
        layer.check_output("nope", text="hi")
