"""Hard-constraint rule sets: versioned YAML, one per decision type, and their evaluation.

A rule set file names its decision type, optionally the actions it knows and named term lists,
and a list of rules. Each rule has an id, a stage, a condition (`safety.conditions`) and an
effect:

    - id: legal-only
      stage: input                  # input: before the policy acts; output: on what it proposed
      when: {field: context.ticket.text, contains_any: $legal_terms}
      effect: {type: mask, keep: [legal]}

Effects are `block`, `escalate`, `redact` (removes what the condition's text operators matched on
the stage's text: `input.text` or `output.text`) and `mask` (input stage only; `actions: [...]`
masks those, `keep: [...]` masks every other action, and in a `for_each_action` rule a bare mask
masks the action being examined, whose name replaces `{action}` in field paths).

A rule set may also say what happens to text in a language no moderation provider in the chain
covers (`safety.language`): `uncovered_language: escalate` (the default: a human reads it),
`block`, or `mark` (served, with the verdict saying so). It is never a silent allow.

A rule set's version is the SHA-256 of its parsed content in canonical JSON, so reformatting or
commenting the YAML does not change it and any change of meaning does. Validation errors name the
file, the rule and the field. Turning rule hits into one verdict is `safety.verdict`'s job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safety.conditions import Condition, ConditionError, EvaluationError, parse_condition, span_fields
from safety.pii import Span

__all__ = [
    "EFFECTS",
    "SHIPPED_DIR",
    "Effect",
    "Rule",
    "RuleEvaluationError",
    "RuleHit",
    "RuleSet",
    "RuleSetError",
    "canonical_hash",
    "evaluate_rules",
    "load_ruleset",
    "load_rulesets",
    "parse_ruleset",
    "shipped_rulesets",
]

SHIPPED_DIR = Path(__file__).parent / "rulesets"
EFFECTS = ("block", "escalate", "redact", "mask")
UNCOVERED_LANGUAGE_EFFECTS = ("escalate", "block", "mark")
STAGES = ("input", "output")
TEXT_FIELD = {"input": "input.text", "output": "output.text"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RuleSetError(ValueError):
    """A rule set failed validation. The message names the source, the rule id and the field."""

    def __init__(self, source: str, rule_id: str | None, location: str, message: str) -> None:
        where = f"rule {rule_id!r}: " if rule_id else ""
        super().__init__(f"{source}: {where}{location}: {message}")
        self.source, self.rule_id, self.location, self.message = source, rule_id, location, message


class RuleEvaluationError(ValueError):
    """A rule met a context it cannot evaluate (e.g. a number compared with text)."""

    def __init__(self, rule_id: str, field: str, message: str) -> None:
        super().__init__(f"rule {rule_id!r}: {message}")
        self.rule_id, self.field = rule_id, field


@dataclass(frozen=True)
class Effect:
    type: str  # one of EFFECTS
    message: str = ""
    actions: tuple[str, ...] = ()  # mask: these actions
    keep: tuple[str, ...] = ()  # mask: every action except these


@dataclass(frozen=True)
class Rule:
    id: str
    stage: str
    when: Condition
    effect: Effect
    description: str = ""
    for_each_action: bool = False


@dataclass(frozen=True)
class RuleHit:
    """One rule that matched: its effect, and what it redacts (spans of the stage's text) or masks."""

    rule_id: str
    effect: str
    message: str
    spans: tuple[Span, ...] = ()
    masked: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    name: str
    decision_type: str
    rules: tuple[Rule, ...]
    hash: str
    actions: tuple[str, ...] = ()
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    source: str = "<memory>"
    document: dict[str, Any] = field(default_factory=dict, repr=False)  # the parsed YAML, for storing
    uncovered_language: str = "escalate"  # what text no moderation provider's languages cover gets

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"rule set {self.name!r} has no rule {rule_id!r}")


def canonical_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 of the document as canonical JSON (sorted keys, no whitespace)."""
    payload = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- parsing


def _parse_effect(data: Any, rule: Mapping[str, Any], actions: tuple[str, ...], err: Any) -> Effect:
    if isinstance(data, str):
        data = {"type": data}
    if not isinstance(data, Mapping):
        raise err("effect", f"expected one of {list(EFFECTS)} or a mapping with 'type'")
    unknown = sorted(set(data) - {"type", "message", "actions", "keep"})
    if unknown:
        raise err("effect", f"unknown keys {unknown}")
    kind = data.get("type")
    if kind not in EFFECTS:
        raise err("effect.type", f"expected one of {list(EFFECTS)}, got {kind!r}")
    mask_actions, keep = data.get("actions", []), data.get("keep", [])
    for key, value in (("actions", mask_actions), ("keep", keep)):
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise err(f"effect.{key}", "expected a list of action names")
        if actions and set(value) - set(actions):
            raise err(
                f"effect.{key}",
                f"unknown actions {sorted(set(value) - set(actions))}; known: {list(actions)}",
            )
    if kind == "mask":
        if rule.get("stage") != "input":
            raise err("effect", "mask works on the action set before the policy acts: use stage: input")
        if bool(mask_actions) + bool(keep) + bool(rule.get("for_each_action")) != 1:
            raise err("effect", "a mask needs exactly one of 'actions', 'keep' or for_each_action: true")
    elif mask_actions or keep:
        raise err("effect", f"'actions'/'keep' only apply to mask, not {kind}")
    message = data.get("message", "")
    if not isinstance(message, str):
        raise err("effect.message", "expected text")
    return Effect(kind, message, tuple(mask_actions), tuple(keep))


def _parse_rule(data: Any, index: int, ruleset: Mapping[str, Any], source: str) -> Rule:
    rule_id = data.get("id") if isinstance(data, Mapping) else None
    label = rule_id if isinstance(rule_id, str) else f"#{index}"

    def err(location: str, message: str) -> RuleSetError:
        return RuleSetError(source, label, location, message)

    if not isinstance(data, Mapping):
        raise RuleSetError(source, None, f"rules[{index}]", "expected a mapping")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise err("id", "expected a lower-case id (letters, digits, '-', '_', '.')")
    unknown = sorted(set(data) - {"id", "description", "stage", "when", "effect", "for_each_action"})
    if unknown:
        raise err(unknown[0], f"unknown keys {unknown}")
    stage = data.get("stage")
    if stage not in STAGES:
        raise err("stage", f"expected one of {list(STAGES)}, got {stage!r}")
    for_each = data.get("for_each_action", False)
    if not isinstance(for_each, bool):
        raise err("for_each_action", "expected true or false")
    if "when" not in data:
        raise err("when", "missing condition")
    lists = ruleset["lists"]
    try:
        when = parse_condition(data["when"], "when", lists)
    except ConditionError as exc:
        raise err(exc.location, exc.message) from exc
    if "{action}" in json.dumps(data["when"]) and not for_each:
        raise err("when", "'{action}' in a field path needs for_each_action: true")
    effect = _parse_effect(data.get("effect"), data, ruleset["actions"], err)
    if effect.type == "redact" and TEXT_FIELD[stage] not in span_fields(when):
        raise err(
            "effect",
            f"redact removes what the condition matched in {TEXT_FIELD[stage]}: the condition needs a "
            f"regex / contains_any / pii / links_outside test on that field",
        )
    description = data.get("description", "")
    return Rule(rule_id, stage, when, effect, description if isinstance(description, str) else "", for_each)


def parse_ruleset(document: Any, source: str = "<memory>") -> RuleSet:
    """Validate a parsed YAML document and build the rule set."""
    if not isinstance(document, Mapping):
        raise RuleSetError(source, None, "(top level)", "expected a mapping")
    unknown = sorted(
        set(document) - {"name", "decision_type", "description", "actions", "lists", "rules", "uncovered_language"}
    )
    if unknown:
        raise RuleSetError(source, None, unknown[0], f"unknown top-level keys {unknown}")
    for key in ("name", "decision_type"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise RuleSetError(source, None, key, "required, a non-empty string")
    actions = document.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
        raise RuleSetError(source, None, "actions", "expected a list of action names")
    lists = document.get("lists", {})
    if not isinstance(lists, Mapping):
        raise RuleSetError(source, None, "lists", "expected a mapping of name -> list of strings")
    for name, values in lists.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise RuleSetError(source, None, f"lists.{name}", "expected a non-empty list of strings")
    uncovered = document.get("uncovered_language", "escalate")
    if uncovered not in UNCOVERED_LANGUAGE_EFFECTS:
        raise RuleSetError(
            source, None, "uncovered_language", f"expected one of {list(UNCOVERED_LANGUAGE_EFFECTS)}, got {uncovered!r}"
        )
    rules_data = document.get("rules")
    # An empty list is allowed: it declares a decision type that has no hard constraints (yet).
    if not isinstance(rules_data, list):
        raise RuleSetError(source, None, "rules", "expected a list of rules")
    context = {"actions": tuple(actions), "lists": {k: tuple(v) for k, v in lists.items()}}
    rules = tuple(_parse_rule(r, i, context, source) for i, r in enumerate(rules_data))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleSetError(source, rule.id, "id", "duplicate rule id")
        seen.add(rule.id)
    return RuleSet(
        name=document["name"],
        decision_type=document["decision_type"],
        rules=rules,
        hash=canonical_hash(document),
        actions=tuple(actions),
        lists=context["lists"],
        description=str(document.get("description", "")),
        source=source,
        document=json.loads(json.dumps(document, default=str)),
        uncovered_language=uncovered,
    )


def load_ruleset(path: Path | str) -> RuleSet:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RuleSetError(path.name, None, "(yaml)", f"not valid YAML: {exc}") from exc
    return parse_ruleset(document, source=path.name)


def load_rulesets(directory: Path | str) -> dict[str, RuleSet]:
    """Every *.yaml / *.yml rule set in `directory`, keyed by decision type."""
    found: dict[str, RuleSet] = {}
    for path in sorted(Path(directory).glob("*.y*ml")):
        ruleset = load_ruleset(path)
        if ruleset.decision_type in found:
            other = found[ruleset.decision_type].source
            raise RuleSetError(
                path.name, None, "decision_type", f"{ruleset.decision_type!r} is also in {other}"
            )
        found[ruleset.decision_type] = ruleset
    return found


def shipped_rulesets() -> dict[str, RuleSet]:
    """The rule sets that ship with Arbiter (safety/rulesets/), keyed by decision type."""
    return load_rulesets(SHIPPED_DIR)


# ---------------------------------------------------------------- evaluation


def build_scope(
    context: Mapping[str, Any] | None,
    input_text: str | None = None,
    output_action: str | None = None,
    output_text: str | None = None,
) -> dict[str, Any]:
    """What field paths resolve against: `context.*`, `input.text`, `output.action`, `output.text`
    (`evaluate_rules` adds `actions`, the candidate actions)."""
    return {
        "context": dict(context or {}),
        "input": {"text": input_text},
        "output": {"action": output_action, "text": output_text},
    }


def evaluate_rules(
    ruleset: RuleSet, stage: str, scope: Mapping[str, Any], actions: Sequence[str] = ()
) -> list[RuleHit]:
    """The rules of `stage` that match `scope`, in rule-set order.

    `actions` is the action set a mask applies to (default: the rule set's `actions`). A
    `for_each_action` rule matches when it matches for at least one of them.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    candidates = tuple(actions) or ruleset.actions
    # Rules may ask which actions are on the table (e.g. "only if a tier-2 team exists").
    scope = {**scope, "actions": list(candidates)}
    text_field = TEXT_FIELD[stage]
    hits = []
    for rule in ruleset.rules:
        if rule.stage != stage:
            continue
        try:
            if rule.for_each_action:
                matched = [a for a in candidates if rule.when.evaluate(scope, a).matched]
                if not matched:
                    continue
                spans: tuple[Span, ...] = ()
                masked = tuple(matched) if rule.effect.type == "mask" else ()
            else:
                hit = rule.when.evaluate(scope)
                if not hit.matched:
                    continue
                spans = tuple(s for f, s in hit.spans if f == text_field)
                masked = ()
                if rule.effect.type == "mask":
                    keep = set(rule.effect.keep)
                    masked = rule.effect.actions or tuple(a for a in candidates if a not in keep)
        except EvaluationError as exc:
            raise RuleEvaluationError(rule.id, exc.field, str(exc)) from exc
        if rule.effect.type == "redact" and not spans:
            continue  # matched through a non-text branch: there is nothing to remove
        message = rule.effect.message or rule.description or rule.id
        hits.append(RuleHit(rule.id, rule.effect.type, message, spans, masked))
    return hits
