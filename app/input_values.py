"""Values that no store, tokenizer or JSON encoder can carry, found wherever they sit in a JSON document.

- a lone UTF-16 surrogate (``"\\ud800"``): not Unicode text; a tokenizer raises on it, and a response that
  echoes it cannot be encoded as UTF-8;
- the NUL character: PostgreSQL stores it neither in ``text`` nor in ``jsonb`` (SQLite does);
- ``NaN``, ``Infinity`` and numbers beyond a double's range: not JSON by RFC 8259; ``jsonb`` refuses them;
- integers outside the signed 64-bit range: no column or seed holds them.

The API's input guard (``app.api.input_guard``) refuses them in every request; ``decide`` refuses them in a
context from any caller. This module only finds them; it does not check schemas or lengths.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["INT32_MAX", "INT64_MAX", "INT64_MIN", "BigInt", "find_hostile", "parse_int"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1  # the largest value of an INTEGER column on PostgreSQL (a sequence number, say)

class BigInt(str):
    """An integer literal too long for int64, kept as text (Python refuses to parse > 4300 digits anyway)."""


def parse_int(literal: str) -> int | BigInt:
    return int(literal) if len(literal) <= 20 else BigInt(literal)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains the NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate ({text[exc.start]!a}), which is not valid Unicode text"
    return None


def find_hostile(value: Any, where: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str] | None:
    """The location and reason of the first value in a parsed JSON document that must be refused, or None.

    Example:
        >>> find_hostile({"context": {"subject": "\\ud800"}})
        (('context', 'subject'), "contains a lone surrogate ('\\\\ud800'), which is not valid Unicode text")
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [(where, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, BigInt):
            return path, "is an integer outside the signed 64-bit range"
        if isinstance(node, str):
            problem = _text_problem(node)
            if problem:
                return path, problem
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not INT64_MIN <= node <= INT64_MAX:
                return path, "is an integer outside the signed 64-bit range"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return path, "is not a finite number (NaN, Infinity or beyond a double's range are not JSON)"
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                problem = _text_problem(key)
                if problem:
                    return (*path, key.encode("utf-8", "backslashreplace").decode()), f"(a key) {problem}"
                stack.append(((*path, key), child))
        elif isinstance(node, list):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(node))))
    return None
