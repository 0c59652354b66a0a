"""Decision types are configuration: YAML in, validated objects and chat messages out."""

from __future__ import annotations

import pytest
import yaml

from policies.decision_types import BUILTIN_DIR, DecisionTypeError, load_decision_type, load_decision_types

TICKET = {"subject": "Charged twice", "body": "I was charged twice.", "customer": {"tier": "vip", "language": "de"}}


def test_builtin_types_load_with_their_kinds():
    types = load_decision_types()
    assert {"ticket-routing", "content"} <= set(types)
    routing = types["ticket-routing"]
    assert routing.kind == "action" and len(routing.action_ids) >= 5
    assert all(a.description for a in routing.actions)
    assert types["content"].kind == "text" and types["content"].action_ids == ()


def test_messages_fill_the_template_and_list_every_action(routing_type):
    system, user = routing_type.messages(TICKET)
    for action in routing_type.actions:
        assert f"{action.id}: {action.description}" in system["content"]
    assert "Charged twice" in user["content"] and "vip, de" in user["content"]


def test_optional_fields_missing_render_empty(routing_type):
    ticket = {"subject": "Hi", "body": "Help", "customer": {"tier": "standard"}}
    _, user = routing_type.messages(ticket)
    assert user["content"].startswith("Customer: standard, \n")


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"body": "x", "customer": {"tier": "vip"}}, "<root>"),  # subject missing
        ({"subject": "s", "body": "x", "customer": {"tier": "gold"}}, "customer/tier"),
        ({"subject": "", "body": "x", "customer": {"tier": "vip"}}, "subject"),
    ],
)
def test_bad_context_names_the_field(routing_type, context, field):
    with pytest.raises(DecisionTypeError, match=f"context field {field}"):
        routing_type.messages(context)


def test_new_decision_type_is_just_a_yaml_file(tmp_path):
    spec = {
        "name": "refund-approval",
        "kind": "action",
        "actions": [{"id": "approve", "description": "refund now"}, {"id": "deny"}, {"id": "escalate"}],
        "context_schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}},
        "prompt": {"system": "Decide: {action_names}.", "user": "Refund of {amount} EUR requested."},
    }
    (tmp_path / "refund.yaml").write_text(yaml.safe_dump(spec))
    types = load_decision_types(BUILTIN_DIR, tmp_path)
    refund = types["refund-approval"]
    assert refund.action_ids == ("approve", "deny", "escalate")
    system, user = refund.messages({"amount": 12.5})
    assert system["content"] == "Decide: approve, deny or escalate."
    assert user["content"] == "Refund of 12.5 EUR requested."


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"actions": [{"id": "only"}]}, "at least two actions"),
        ({"actions": [{"id": "a"}, {"id": "a"}]}, "duplicate action ids"),
        ({"actions": [{"id": "has space"}, {"id": "b"}]}, "action id"),
        ({"kind": "text"}, "must not declare actions"),
        ({"context_schema": {"type": "no-such-type"}}, "not a valid JSON schema"),
        ({"name": "Bad Name"}, "decision type name"),
    ],
)
def test_malformed_files_are_refused_with_a_reason(tmp_path, patch, message):
    spec = {"name": "x", "kind": "action", "actions": [{"id": "a"}, {"id": "b"}], "prompt": {"user": "{q}"}}
    spec.update(patch)
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(DecisionTypeError, match=message):
        load_decision_type(path)


def test_duplicate_names_across_directories_are_an_error(tmp_path):
    (tmp_path / "copy.yaml").write_text((BUILTIN_DIR / "content.yaml").read_text())
    with pytest.raises(DecisionTypeError, match="defined twice"):
        load_decision_types(BUILTIN_DIR, tmp_path)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(DecisionTypeError, match="not found"):
        load_decision_type(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(DecisionTypeError, match="not valid YAML"):
        load_decision_type(bad)
