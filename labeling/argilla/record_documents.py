"""Plain record documents and the matching rules the in-process search engine applies to them.

Argilla's Elasticsearch engine turns each record into a JSON document and lets Elasticsearch
filter, score and sort those documents. The embedded engine (`inprocess_search`) builds the same
documents from argilla-server's own database rows and evaluates queries with the functions here:

- `Tokens` / `score_tokens` / `text_score`: a small subset of Elasticsearch's
  `simple_query_string` (the syntax the Argilla UI search box sends): words are ANDed,
  `"quoted phrases"`, `-excluded`, `prefix*`, and `a | b` alternatives; matching is
  case-insensitive on word tokens, tokenized once per document and field.
- `terms_match` / `range_match`: the `terms` and `range` filters; a list value matches when any
  element matches, as in Elasticsearch.
- `sort_documents`: multi-key sort where documents lacking the key go last in either direction
  (Elasticsearch's `missing: _last`).

This module is pure standard library on purpose: it runs inside argilla-server's own virtual
environment (where Arbiter is not installed) and is unit-tested from Arbiter's. It does not read
any database or know argilla-server's classes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "RecordDoc",
    "ResponseDoc",
    "Tokens",
    "cosine_similarity",
    "parse_text_query",
    "range_match",
    "score_tokens",
    "sort_documents",
    "terms_match",
    "text_score",
]

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class ResponseDoc:
    """One user's response to a record: who, in which state, and the answer per question."""

    user_id: str
    status: str  # "draft" | "submitted" | "discarded"
    values: dict[str, Any] = field(default_factory=dict)  # question name -> value


@dataclass
class RecordDoc:
    """What the engine knows about one record (the Elasticsearch document, as a dataclass)."""

    id: str
    external_id: str | None
    status: str  # record status: "pending" | "completed"
    inserted_at: datetime
    updated_at: datetime
    texts: dict[str, str] = field(default_factory=dict)  # searchable field name -> text
    metadata: dict[str, Any] = field(default_factory=dict)
    responses: list[ResponseDoc] = field(default_factory=list)
    suggestions: dict[str, dict[str, Any]] = field(default_factory=dict)  # question -> value/score/agent/type
    vectors: dict[str, list[float]] = field(default_factory=dict)  # vector settings id -> value
    _tokens: dict[str, Tokens] = field(default_factory=dict, repr=False, compare=False)

    def tokens(self, name: str | None = None) -> list[Tokens]:
        """The tokenized text of one field, or of every field (computed once per document)."""
        names = [name] if name else list(self.texts)
        for n in names:
            if n not in self._tokens:
                self._tokens[n] = Tokens(self.texts.get(n, ""))
        return [self._tokens[n] for n in names]

    def record_property(self, name: str) -> Any:
        """The value of a record-level property a filter or sort may name (id, status, dates)."""
        if name not in {"id", "external_id", "status", "inserted_at", "updated_at"}:
            raise ValueError(f"Unknown record property {name!r}")
        return getattr(self, name)


# --------------------------------------------------------------------------- text query


@dataclass(frozen=True)
class _Clause:
    """One alternative group of the query: any of `options` must match (negated: none may)."""

    options: tuple[tuple[str, ...], ...]  # each option is a word sequence (a phrase of 1+ words)
    prefix: tuple[bool, ...]  # per option: last word is a prefix (`word*`)
    negated: bool = False


def parse_text_query(query: str) -> list[_Clause]:
    """Split a simple_query_string query into AND-ed clauses.

    Example: `cats "red car" -dog tea|coffee pre*` -> five clauses; the third excludes "dog", the
    fourth matches "tea" or "coffee", the last matches any word starting with "pre".
    """
    raw_tokens = re.findall(r'-?"[^"]*"\*?|[^\s"]+', query)
    # `a | b` and `a|b` both mean alternatives: glue them into one token first.
    glued: list[str] = []
    for token in raw_tokens:
        if glued and (token == "|" or glued[-1].endswith("|") or token.startswith("|")):
            glued[-1] = glued[-1] + token
            continue
        glued.append(token)

    clauses: list[_Clause] = []
    for token in glued:
        negated = token.startswith("-") and len(token) > 1
        token = token[1:] if negated else token.lstrip("+")
        options: list[tuple[str, ...]] = []
        prefixes: list[bool] = []
        for part in token.split("|"):
            is_prefix = part.endswith("*")
            words = tuple(w.lower() for w in _WORD.findall(part.strip('"*')))
            if words:
                options.append(words)
                prefixes.append(is_prefix)
        if options:
            clauses.append(_Clause(tuple(options), tuple(prefixes), negated))
    return clauses


class Tokens:
    """One text as lower-cased word tokens, with counts for fast single-word lookups."""

    __slots__ = ("counts", "words")

    def __init__(self, text: str | None):
        self.words = [w.lower() for w in _WORD.findall(text or "")]
        self.counts = Counter(self.words)

    def occurrences(self, phrase: tuple[str, ...], prefix: bool) -> int:
        if len(phrase) == 1:
            if prefix:
                return sum(n for word, n in self.counts.items() if word.startswith(phrase[0]))
            return self.counts.get(phrase[0], 0)
        if any(word not in self.counts for word in phrase[:-1]):
            return 0  # cheap rejection before the scan
        n, words, count = len(phrase), self.words, 0
        for i in range(len(words) - n + 1):
            last = words[i + n - 1]
            if all(words[i + j] == phrase[j] for j in range(n - 1)) and (
                last.startswith(phrase[-1]) if prefix else last == phrase[-1]
            ):
                count += 1
        return count


def score_tokens(query: str | list[_Clause], fields: Iterable[Tokens]) -> float | None:
    """Score tokenized fields against the query: None when it does not match, else a relevance.

    Each clause must match in at least one field (a phrase within one field), as a multi-field
    simple_query_string with the AND operator does. The score is the sum over matched clauses of
    1 + log(occurrences): enough to rank records with more hits first; it is not BM25 and makes no
    claim to reproduce Elasticsearch's numbers.
    """
    clauses = parse_text_query(query) if isinstance(query, str) else query
    fields = list(fields)
    score = 0.0
    for clause in clauses:
        hits = sum(f.occurrences(opt, pre) for f in fields for opt, pre in zip(clause.options, clause.prefix))
        if clause.negated:
            if hits:
                return None
            continue
        if not hits:
            return None
        score += 1.0 + math.log(hits)
    return score if score > 0 else 1.0


def text_score(query: str | list[_Clause], texts: Iterable[str]) -> float | None:
    """`score_tokens` for plain texts (one field per text)."""
    return score_tokens(query, [Tokens(t) for t in texts])


# --------------------------------------------------------------------------- filters


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def terms_match(value: Any, values: Iterable[Any]) -> bool:
    """A `terms` filter: true when the value (or any element of a list value) is in `values`.

    Values are compared as strings because the API sends terms as strings even for numbers.
    """
    wanted = {str(v) for v in values}
    return any(str(v) in wanted for v in _as_list(value))


def _comparable(value: Any, bound: Any) -> tuple[Any, Any] | None:
    """Bring a document value and a filter bound to one comparable type, or None if impossible."""
    if isinstance(value, datetime):
        if isinstance(bound, str):
            try:
                bound = datetime.fromisoformat(bound)  # 3.11+ reads "Z"
            except ValueError:
                return None
        if isinstance(bound, datetime):
            # Argilla stores naive UTC datetimes; compare on naive UTC.
            if bound.tzinfo is not None:
                bound = bound.astimezone(UTC).replace(tzinfo=None)
            return value.replace(tzinfo=None), bound
        return None
    try:
        return float(value), float(bound)
    except (TypeError, ValueError):
        return None


def range_match(value: Any, ge: Any = None, le: Any = None) -> bool:
    """A `range` filter: true when the value (or any list element) lies within [ge, le]."""
    for item in _as_list(value):
        ok = True
        for bound, test in ((ge, lambda v, b: v >= b), (le, lambda v, b: v <= b)):
            if bound is None:
                continue
            pair = _comparable(item, bound)
            if pair is None or not test(*pair):
                ok = False
                break
        if ok:
            return True
    return False


# --------------------------------------------------------------------------- sorting


def _sortable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        numbers = [v for v in value if isinstance(v, (int, float))]
        # Elasticsearch sorts a multi-valued field by its average in "avg" mode.
        return sum(numbers) / len(numbers) if numbers else (str(value[0]) if value else None)
    return value


def sort_documents(
    docs: Sequence[RecordDoc],
    keys: Sequence[tuple[Callable[[RecordDoc], Any], bool]],
) -> list[RecordDoc]:
    """Sort by several keys, each `(getter, descending)`; missing (None) values go last always.

    Python's sort is stable, so sorting by the keys from last to first gives a multi-key order
    with a per-key direction.
    """
    result = list(docs)
    for getter, descending in reversed(keys):
        present = [(d, _sortable(getter(d))) for d in result]
        with_value = [(d, v) for d, v in present if v is not None]
        missing = [d for d, v in present if v is None]
        try:
            with_value.sort(key=lambda dv: dv[1], reverse=descending)
        except TypeError:  # mixed types: fall back to their text
            with_value.sort(key=lambda dv: str(dv[1]), reverse=descending)
        result = [d for d, _ in with_value] + missing
    return result


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in [-1, 1]; 0 when either vector is all zeros."""
    if len(a) != len(b):
        raise ValueError(f"vector sizes differ: {len(a)} != {len(b)}")
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
