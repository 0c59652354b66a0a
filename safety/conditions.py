"""Conditions of the rule engine: parsing them from YAML and evaluating them against a scope.

A condition is either a leaf, `{field: <dotted path>, <operator>: <value>}` with exactly one
operator, or a combinator: `{all: [...]}`, `{any: [...]}`, `{not: {...}}`. Fields are dotted paths
into the scope the engine builds (`context.customer.tier`, `output.text`, `actions`); `{action}` in a path is
replaced by the action being examined in a `for_each_action` rule. A missing field (or null) makes
every operator false except `exists: false`.

Text operators (`regex`, `contains_any`, `pii`, `links_outside`) also return the spans they
matched, which is what a `redact` effect removes. Parsing reports errors with the location inside
the rule (`when.any[1].regex`); the rule id is added by `safety.rules`. This module knows nothing of
effects or stages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from safety.pii import PII_KINDS, Span, find_pii

__all__ = [
    "OPERATORS",
    "SPAN_OPERATORS",
    "Condition",
    "ConditionError",
    "EvaluationError",
    "Hit",
    "parse_condition",
    "span_fields",
]

MISSING: Any = object()


class ConditionError(ValueError):
    """A condition could not be parsed; `location` says where inside the rule (e.g. "when.all[0].in")."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class EvaluationError(ValueError):
    """A field had a type the operator cannot work with (e.g. `gt` on a string)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


@dataclass(frozen=True)
class Hit:
    """Whether a condition matched, and the text spans (keyed by resolved field path) it matched."""

    matched: bool
    spans: tuple[tuple[str, Span], ...] = ()


_NO = Hit(False)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+", re.IGNORECASE)


def resolve(scope: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or MISSING (null counts as missing)."""
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return MISSING if value is None else value


def _bind(path: str, action: str | None) -> str:
    return path.replace("{action}", action) if action is not None else path


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvaluationError(field, f"expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise EvaluationError(field, f"expected text, got {type(value).__name__}")
    return value


def _is_collection(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


@dataclass(frozen=True)
class FieldRef:
    """`{field: path}` as the operand of a comparison: compare two fields of the scope."""

    path: str


@dataclass(frozen=True)
class Terms:
    """The operand of `contains_any`: the terms and one case-insensitive whole-word pattern."""

    terms: tuple[str, ...]
    pattern: re.Pattern[str]


# Every operator: (leaf, value found at the field, resolved field path, scope, action) -> Hit.
_Op = Callable[["Leaf", Any, str, Mapping[str, Any], "str | None"], Hit]


def _compare(test: Callable[[float, float], bool]) -> _Op:
    def op(leaf: Leaf, found: Any, field: str, scope: Mapping[str, Any], action: str | None) -> Hit:
        operand = leaf.value
        if isinstance(operand, FieldRef):
            other = _bind(operand.path, action)
            operand = resolve(scope, other)
            if operand is MISSING:
                return _NO
            operand = _number(operand, other)
        return Hit(test(_number(found, field), operand))

    return op


def _plain(test: Callable[[Any, Any], bool]) -> _Op:
    return lambda leaf, found, field, scope, action: Hit(test(found, leaf.value))


def _spans(field: str, spans: list[Span]) -> Hit:
    return Hit(bool(spans), tuple((field, s) for s in spans))


def _contains(found: Any, value: Any) -> bool:
    if isinstance(found, str):
        return isinstance(value, str) and value in found
    return _is_collection(found) and value in found


def _contains_any(leaf: Leaf, found: Any, field: str, scope: Mapping[str, Any], action: str | None) -> Hit:
    terms: Terms = leaf.value
    if isinstance(found, str):
        return _spans(field, [Span(m.start(), m.end(), "[REDACTED]") for m in terms.pattern.finditer(found)])
    if _is_collection(found):
        # Membership in a list field (e.g. tags): a match, but nothing to redact.
        return Hit(bool({t.lower() for t in terms.terms} & {str(x).lower() for x in found}))
    raise EvaluationError(field, f"contains_any needs text or a list, got {type(found).__name__}")


def _regex(leaf: Leaf, found: Any, field: str, scope: Mapping[str, Any], action: str | None) -> Hit:
    matches = leaf.value.finditer(_text(found, field))
    return _spans(field, [Span(m.start(), m.end(), "[REDACTED]") for m in matches if m.end() > m.start()])


def _pii(leaf: Leaf, found: Any, field: str, scope: Mapping[str, Any], action: str | None) -> Hit:
    return _spans(field, [m.span() for m in find_pii(_text(found, field), leaf.value)])


def _links_outside(leaf: Leaf, found: Any, field: str, scope: Mapping[str, Any], action: str | None) -> Hit:
    text, spans = _text(found, field), []
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?)]}")  # sentence punctuation after a link is not part of it
        host = (urlsplit(url if "://" in url else "http://" + url).hostname or "").lower()
        if not any(host == domain or host.endswith("." + domain) for domain in leaf.value):
            spans.append(Span(m.start(), m.start() + len(url), "[LINK]"))
    return _spans(field, spans)


def _longer_than(leaf: Leaf, found: Any, field: str, scope: Mapping[str, Any], action: str | None) -> Hit:
    if not isinstance(found, str | list | tuple):
        raise EvaluationError(field, f"longer_than needs text or a list, got {type(found).__name__}")
    return Hit(len(found) > leaf.value)


_OPS: dict[str, _Op] = {
    "equals": _plain(lambda found, value: found == value),
    "not_equals": _plain(lambda found, value: found != value),
    "in": _plain(lambda found, value: found in value),
    "not_in": _plain(lambda found, value: found not in value),
    "contains": _plain(_contains),
    "gt": _compare(lambda a, b: a > b),
    "gte": _compare(lambda a, b: a >= b),
    "lt": _compare(lambda a, b: a < b),
    "lte": _compare(lambda a, b: a <= b),
    "longer_than": _longer_than,
    "regex": _regex,
    "contains_any": _contains_any,
    "pii": _pii,
    "links_outside": _links_outside,
}
OPERATORS: tuple[str, ...] = ("exists", *_OPS)
SPAN_OPERATORS: frozenset[str] = frozenset({"regex", "contains_any", "pii", "links_outside"})


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    value: Any  # the operand, validated and compiled by parse_condition

    def evaluate(self, scope: Mapping[str, Any], action: str | None = None) -> Hit:
        field = _bind(self.field, action)
        found = resolve(scope, field)
        if self.op == "exists":
            return Hit((found is not MISSING) == self.value)
        if found is MISSING:
            return _NO
        return _OPS[self.op](self, found, field, scope, action)


@dataclass(frozen=True)
class AllOf:
    children: tuple[Condition, ...]

    def evaluate(self, scope: Mapping[str, Any], action: str | None = None) -> Hit:
        spans: list[tuple[str, Span]] = []
        for child in self.children:
            hit = child.evaluate(scope, action)
            if not hit.matched:
                return _NO
            spans.extend(hit.spans)
        return Hit(True, tuple(spans))


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]

    def evaluate(self, scope: Mapping[str, Any], action: str | None = None) -> Hit:
        # No short-circuit: a redaction must remove what every matching branch found.
        matched = [h for h in (child.evaluate(scope, action) for child in self.children) if h.matched]
        return Hit(bool(matched), tuple(s for h in matched for s in h.spans))


@dataclass(frozen=True)
class Not:
    child: Condition

    def evaluate(self, scope: Mapping[str, Any], action: str | None = None) -> Hit:
        return Hit(not self.child.evaluate(scope, action).matched)


Condition = Leaf | AllOf | AnyOf | Not


def span_fields(condition: Condition) -> set[str]:
    """Fields on which this condition can produce spans (what a redact effect could remove)."""
    if isinstance(condition, Leaf):
        return {condition.field} if condition.op in SPAN_OPERATORS else set()
    if isinstance(condition, AllOf | AnyOf):
        return set().union(*(span_fields(c) for c in condition.children))
    return set()  # spans under `not` never match anything


# ---------------------------------------------------------------- parsing


def _string_list(value: Any, location: str, lists: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A list of strings, or "$name" naming one of the rule set's `lists`."""
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in lists:
            raise ConditionError(location, f"unknown list {value!r}; defined lists: {sorted(lists)}")
        return lists[value[1:]]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConditionError(location, "expected a non-empty list of strings or a $list reference")
    return tuple(value)


def _operand(op: str, value: Any, location: str, lists: Mapping[str, tuple[str, ...]]) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise ConditionError(location, "expected true or false")
        return value
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, Mapping):
            if set(value) != {"field"} or not isinstance(value["field"], str):
                raise ConditionError(location, "a field operand is written {field: <dotted path>}")
            return FieldRef(value["field"])
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionError(location, f"expected a number or {{field: ...}}, got {value!r}")
        return float(value)
    if op in ("in", "not_in"):
        if isinstance(value, str) and value.startswith("$"):
            return _string_list(value, location, lists)
        if not isinstance(value, list):
            raise ConditionError(location, "expected a list or a $list reference")
        return tuple(value)
    if op == "longer_than":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConditionError(location, f"expected a non-negative integer, got {value!r}")
        return value
    if op == "regex":
        if not isinstance(value, str):
            raise ConditionError(location, "expected a regular expression string")
        try:
            return re.compile(value)
        except re.error as exc:
            raise ConditionError(location, f"invalid regular expression: {exc}") from exc
    if op == "contains_any":
        terms = _string_list(value, location, lists)
        alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        return Terms(terms, re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE))
    if op == "pii":
        if value == "any":
            return PII_KINDS
        kinds = _string_list(value, location, lists)
        unknown = sorted(set(kinds) - set(PII_KINDS))
        if unknown:
            raise ConditionError(location, f"unknown PII kinds {unknown}; known: {list(PII_KINDS)}")
        return kinds
    if op == "links_outside":
        return tuple(d.lower().lstrip(".") for d in _string_list(value, location, lists))
    return value  # equals, not_equals, contains: any YAML scalar or structure


def parse_condition(
    data: Any, location: str = "when", lists: Mapping[str, tuple[str, ...]] | None = None
) -> Condition:
    """Parse one condition; `lists` are the rule set's named lists, referenced as "$name"."""
    lists = lists or {}
    if not isinstance(data, Mapping) or not data:
        raise ConditionError(location, f"expected a mapping, got {data!r}")
    keys = set(data)
    for combinator in ("all", "any"):
        if combinator in keys:
            if keys != {combinator}:
                raise ConditionError(
                    location, f"'{combinator}' cannot be mixed with {sorted(keys - {combinator})}"
                )
            children = data[combinator]
            if not isinstance(children, list) or not children:
                raise ConditionError(f"{location}.{combinator}", "expected a non-empty list of conditions")
            parsed = tuple(
                parse_condition(c, f"{location}.{combinator}[{i}]", lists) for i, c in enumerate(children)
            )
            return AllOf(parsed) if combinator == "all" else AnyOf(parsed)
    if "not" in keys:
        if keys != {"not"}:
            raise ConditionError(location, f"'not' cannot be mixed with {sorted(keys - {'not'})}")
        return Not(parse_condition(data["not"], f"{location}.not", lists))
    field = data.get("field")
    if not isinstance(field, str) or not field:
        raise ConditionError(location, "a leaf condition needs 'field: <dotted path>' (or use all/any/not)")
    ops = keys - {"field"}
    unknown = sorted(ops - set(OPERATORS))
    if unknown:
        raise ConditionError(
            location, f"unknown operator {unknown} on field {field!r}; known: {list(OPERATORS)}"
        )
    if len(ops) != 1:
        raise ConditionError(
            location, f"field {field!r} needs exactly one operator, got {sorted(ops) or 'none'}"
        )
    op = ops.pop()
    return Leaf(field, op, _operand(op, data[op], f"{location}.{op}", lists))
