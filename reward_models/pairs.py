"""Preference pairs and the three JSONL formats Arbiter reads and writes.

A preference pair is a prompt (a conversation, possibly one user turn) with two responses, the
preferred one (``chosen``) and the other (``rejected``). Files come in three formats, detected per
line:

- ``prompt``: ``{"prompt": str, "chosen": str, "rejected": str}``
- ``conversational`` (TRL): ``{"prompt": [{"role", "content"}...], "chosen": [...], "rejected": [...]}``;
  without ``prompt`` (TRL's implicit-prompt form) the shared leading messages are the prompt.
- ``hh`` (Anthropic HH-RLHF): ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}``;
  the prompt is everything before the last assistant turn the two transcripts share.

Parsing is lossless: ``render(parse(line))`` gives back the same pair, so an import followed by
an export reproduces the data. This module knows nothing about databases or models.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "FORMATS",
    "Message",
    "PairFormat",
    "PairParseError",
    "PreferencePair",
    "detect_format",
    "iter_pairs",
    "pair_from_record",
    "pair_to_record",
    "read_pairs",
    "write_pairs",
]

PairFormat = Literal["prompt", "conversational", "hh"]
FORMATS: tuple[str, ...] = ("prompt", "conversational", "hh")
ROLES = ("system", "user", "assistant")

_HH_ROLE = {"Human": "user", "Assistant": "assistant", "System": "system"}
_HH_NAME = {v: k for k, v in _HH_ROLE.items()}
_HH_TURN = re.compile(r"\n\n(Human|Assistant|System): ")
_HH_ASSISTANT = "\n\nAssistant: "


class PairParseError(ValueError):
    """A record that is not a preference pair in any known format; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred and a dispreferred response.

    ``format`` remembers the file format the pair came from so an export can write it back the
    same way; it does not take part in equality or the content hash.
    """

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    format: str = field(default="prompt", compare=False)

    def prompt_text(self) -> str:
        """The conversation as plain text: the single user turn as is, else ``Role: content`` turns."""
        if len(self.prompt) == 1 and self.prompt[0].role == "user":
            return self.prompt[0].content
        return "\n\n".join(f"{_HH_NAME.get(m.role, m.role.title())}: {m.content}" for m in self.prompt)

    def prompt_messages(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.prompt]

    def content_hash(self) -> str:
        """Identity of the pair: same prompt, chosen and rejected -> same hash, whatever the format."""
        payload = json.dumps(
            {"prompt": self.prompt_messages(), "chosen": self.chosen, "rejected": self.rejected},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def detect_format(record: dict[str, Any]) -> PairFormat:
    """Which of the three formats a parsed JSON object is in; raises PairParseError if none."""
    if not isinstance(record, dict):
        raise PairParseError("expected a JSON object")
    if "chosen" not in record or "rejected" not in record:
        missing = [k for k in ("chosen", "rejected") if k not in record]
        raise PairParseError(f"missing field(s): {', '.join(missing)}")
    chosen, rejected = record["chosen"], record["rejected"]
    if isinstance(chosen, list) and isinstance(rejected, list):
        return "conversational"
    if isinstance(chosen, str) and isinstance(rejected, str):
        if "prompt" in record:
            return "prompt"
        if chosen.startswith("\n\nHuman: ") and rejected.startswith("\n\nHuman: "):
            return "hh"
        raise PairParseError("string 'chosen'/'rejected' without 'prompt' must be HH transcripts (\\n\\nHuman: ...)")
    raise PairParseError("'chosen' and 'rejected' must both be strings or both be message lists")


def _nonempty(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise PairParseError(f"'{name}' must be a string")
    if not value.strip():
        raise PairParseError(f"'{name}' is empty")
    return value


def _messages(value: Any, name: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise PairParseError(f"'{name}' must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise PairParseError(f"'{name}[{i}]' must be an object with string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise PairParseError(f"'{name}[{i}]' has unknown role {m['role']!r} (expected one of {ROLES})")
        out.append(Message(m["role"], m["content"]))
    return tuple(out)


def _parse_hh_turns(text: str) -> tuple[Message, ...]:
    parts = _HH_TURN.split(text)
    # split() with one group yields ["", role, content, role, content, ...] for a well-formed transcript
    if parts[0] != "" or len(parts) < 3:
        raise PairParseError("HH transcript must start with '\\n\\nHuman: '")
    return tuple(Message(_HH_ROLE[parts[i]], parts[i + 1]) for i in range(1, len(parts), 2))


def _render_hh_turns(messages: Iterable[Message]) -> str:
    return "".join(f"\n\n{_HH_NAME[m.role]}: {m.content}" for m in messages)


def _parse_hh(chosen: str, rejected: str) -> PreferencePair:
    # The prompt is what both transcripts share up to their last common assistant turn. Usually
    # that is everything before the final "Assistant:"; a few HH pairs diverge earlier (or hold
    # two assistant turns in a row), and then the responses carry the rest of the transcript so
    # that nothing is lost.
    split = -1
    for match in re.finditer(re.escape(_HH_ASSISTANT), chosen):
        p = match.start()
        if chosen[:p] == rejected[:p] and rejected.startswith(_HH_ASSISTANT, p):
            split = p
    if split < 0:
        raise PairParseError("chosen and rejected share no prompt ending before an 'Assistant:' turn")
    prompt = _parse_hh_turns(chosen[:split])
    if _render_hh_turns(prompt) != chosen[:split]:
        raise PairParseError("HH prompt does not round-trip (unexpected turn markers)")
    start = split + len(_HH_ASSISTANT)
    return PreferencePair(prompt, chosen[start:], rejected[start:], "hh")


def _split_conversation(chosen: tuple[Message, ...], rejected: tuple[Message, ...]) -> int:
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return n


def pair_from_record(record: Any) -> PreferencePair:
    """Parse one JSON object (any of the three formats) into a PreferencePair."""
    fmt = detect_format(record)
    if fmt == "hh":
        return _parse_hh(record["chosen"], record["rejected"])
    if fmt == "prompt":
        prompt = _nonempty(record["prompt"], "prompt")
        return PreferencePair(
            (Message("user", prompt),), _nonempty(record["chosen"], "chosen"), _nonempty(record["rejected"], "rejected"), fmt
        )
    chosen = _messages(record["chosen"], "chosen")
    rejected = _messages(record["rejected"], "rejected")
    if "prompt" in record:
        prompt = _messages(record["prompt"], "prompt")
    else:
        n = _split_conversation(chosen, rejected)
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        if not prompt:
            raise PairParseError("conversational pair without 'prompt' shares no leading messages")
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        if len(side) != 1 or side[0].role != "assistant":
            raise PairParseError(f"'{name}' must be exactly one assistant message after the prompt")
    return PreferencePair(prompt, chosen[0].content, rejected[0].content, fmt)


def pair_to_record(pair: PreferencePair, fmt: str | None = None) -> dict[str, Any]:
    """The JSON object for ``pair`` in ``fmt`` (default: the format it was read in)."""
    fmt = fmt or pair.format
    if fmt == "prompt":
        return {"prompt": pair.prompt_text(), "chosen": pair.chosen, "rejected": pair.rejected}
    if fmt == "conversational":
        return {
            "prompt": pair.prompt_messages(),
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
    if fmt == "hh":
        if any(m.role not in _HH_NAME for m in pair.prompt):
            raise ValueError("pair has a role HH transcripts cannot express")
        prompt = _render_hh_turns(pair.prompt)
        return {"chosen": prompt + _HH_ASSISTANT + pair.chosen, "rejected": prompt + _HH_ASSISTANT + pair.rejected}
    raise ValueError(f"unknown pair format {fmt!r}; expected one of {FORMATS}")


def iter_pairs(lines: Iterable[str], skip_invalid: bool = False, errors: list[PairParseError] | None = None) -> Iterator[tuple[int, PreferencePair]]:
    """Yield ``(line_number, pair)`` from JSONL lines; blank lines are ignored.

    A bad line raises PairParseError naming its line number, unless ``skip_invalid`` is set, in
    which case it is appended to ``errors`` (when given) and skipped.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairParseError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
            yield number, pair_from_record(record)
        except PairParseError as exc:
            err = PairParseError(str(exc), number) if exc.line is None else exc
            if not skip_invalid:
                raise err from None
            if errors is not None:
                errors.append(err)


def read_pairs(path: str | Path, skip_invalid: bool = False) -> list[PreferencePair]:
    """All pairs of a JSONL file in any of the three formats."""
    with open(path, encoding="utf-8") as fh:
        return [pair for _, pair in iter_pairs(fh, skip_invalid=skip_invalid)]


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair], fmt: str | None = None) -> int:
    """Write pairs as JSONL (each in ``fmt``, or in its own format); returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair_to_record(pair, fmt), ensure_ascii=False) + "\n")
            n += 1
    return n
