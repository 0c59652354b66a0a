"""The wire formats the fake providers answer with, and the scripted behaviours of their "model".

Pure functions and small values, used by `fake_providers.FakeProviders`: a `Reply` says how one
judge call is answered (ok, an HTTP error with headers, slow, malformed, refused, position-biased),
and `openai_completion` / `anthropic_message` build the response bodies the official SDKs parse.
The stand-in model prefers the response with more "good" than "bad" words (a tie when equal), so
tests know the right answer in both orders; token usage is len(text)/4, so costs are predictable.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """How the fake answers one call. kind: ok | error | slow | malformed | refusal | garbage | biased."""

    kind: str = "ok"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


OK = Reply()
MALFORMED = Reply("malformed")  # a 200 whose verdict does not match the schema (billed)
REFUSAL = Reply("refusal")
GARBAGE = Reply("garbage")  # a 200 whose body is not JSON at all
BIASED = Reply("biased")  # always prefers the response shown first


def rate_limited(retry_after_s: float | None = None, *, ms: bool = False) -> Reply:
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after_s is not None:
        headers = (("retry-after-ms", str(int(retry_after_s * 1000))),) if ms else (("retry-after", f"{retry_after_s:g}"),)
    return Reply("error", 429, headers)


def server_error(status: int = 500) -> Reply:
    return Reply("error", status)


def slow(delay_s: float) -> Reply:
    return Reply("slow", delay_s=delay_s)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any
    at: float


@dataclass
class ProviderScript:
    script: deque = field(default_factory=deque)
    default: Reply = OK
    latency_s: float = 0.0  # added to every judge call (the benchmark uses 0.3 s)
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0  # the most judge calls the server was serving at once

    def next(self) -> Reply:
        self.calls += 1
        return self.script.popleft() if self.script else self.default


_SECTION = re.compile(r"\[Response A\]\n(.*?)\n\n\[Response B\]\n(.*?)(?:\n\nWhich response|\Z)", re.DOTALL)


def fake_preference(user_text: str) -> str:
    """'A', 'B' or 'tie': the response with the higher (good - bad) word count wins."""
    match = _SECTION.search(user_text)
    if match is None:
        return "tie"

    def score(text: str) -> int:
        words = re.findall(r"[a-z]+", text.lower())
        return words.count("good") - words.count("bad")

    a, b = score(match.group(1)), score(match.group(2))
    return "A" if a > b else "B" if b > a else "tie"


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _verdict(user_text: str, reply: Reply) -> dict[str, Any]:
    choice = "A" if reply.kind == "biased" else fake_preference(user_text)
    return {"choice": choice, "confidence": 0.8 if reply.kind == "biased" else 0.9, "rationale": f"fake prefers {choice}"}


def openai_completion(body: dict[str, Any], reply: Reply, new_id: Callable[[str], str]) -> dict[str, Any]:
    """A Chat Completions response to `body`, as `reply` says."""
    messages = body.get("messages", [])
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    prompt_tokens = sum(tokens(str(m.get("content", ""))) for m in messages)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if reply.kind == "refusal":
        message["refusal"] = "I can't help with judging this content."
    elif reply.kind == "malformed":
        message["content"] = '{"choice": "maybe", "confidence": "high"'
    else:
        message["content"] = json.dumps(_verdict(user, reply))
    completion_tokens = tokens(message["content"] or message["refusal"] or "")
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{body.get('model')}-2024-07-18",  # providers answer with a dated snapshot
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def anthropic_message(body: dict[str, Any], reply: Reply, new_id: Callable[[str], str]) -> dict[str, Any]:
    """A Messages API response to `body` (the verdict as a tool call), as `reply` says."""
    messages = body.get("messages", [])
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    input_tokens = tokens(str(body.get("system", ""))) + tokens(str(user)) + tokens(json.dumps(body.get("tools", [])))
    if reply.kind == "refusal":
        content: list[dict[str, Any]] = []
        stop_reason = "refusal"
    elif reply.kind == "malformed":
        content = [{"type": "text", "text": "I think A is better."}]
        stop_reason = "end_turn"
    else:
        tool = body.get("tools", [{}])[0].get("name", "record_verdict")
        content = [{"type": "tool_use", "id": new_id("toolu_"), "name": tool, "input": _verdict(str(user), reply)}]
        stop_reason = "tool_use"
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": f"{body.get('model')}-20241022",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": tokens(json.dumps(content))},
    }


def error_body(status: int, *, openai_style: bool) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    if openai_style:
        return {"error": {"message": f"fake {status}", "type": kind, "code": None}}
    return {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
