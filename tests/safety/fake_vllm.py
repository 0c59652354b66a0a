"""A loopback stand-in for vLLM serving a guard model behind `/v1/chat/completions`.

It speaks the real wire format (chat.completion objects with `logprobs.content[].top_logprobs`,
OpenAI-style error bodies) so that the official `openai` SDK's parsing, timeouts and errors run.
What the "model" answers is scripted per user text (and per Granite Guardian risk); the answer is
cut into tokens and the label token carries the scripted alternatives as its top log-probabilities.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.safety.loopback import JSONHandler, serve


@dataclass(frozen=True)
class Answer:
    """What the guard writes, and the probabilities of the label alternatives at the label token
    (e.g. {"unsafe": 0.8, "safe": 0.2}); empty means no log-probabilities for that token."""

    content: str
    alternatives: dict[str, float] = field(default_factory=dict)


@dataclass
class FakeVLLM:
    """Behaviour of the loopback server; tests set `mode` / `answers` and read `requests`.

    mode: "ok", "500", "timeout" (answer after `delay_s`), "malformed" (a chat completion whose
    text is not the family's format), "not-a-completion" (200 with a body of another shape),
    "no-logprobs" (the answer without log-probabilities).
    answers: user text -> Answer, or (user text, risk name) -> Answer for Granite Guardian.
    """

    base_url: str = ""
    mode: str = "ok"
    default: Answer = Answer("safe", {"safe": 0.99, "unsafe": 0.01})
    answers: dict = field(default_factory=dict)
    delay_s: float = 1.5
    requests: list[dict] = field(default_factory=list)

    def answer_for(self, body: dict) -> Answer:
        text = body["messages"][-1]["content"]
        risk = ((body.get("chat_template_kwargs") or {}).get("guardian_config") or {}).get("risk_name")
        if risk is not None and (text, risk) in self.answers:
            return self.answers[(text, risk)]
        return self.answers.get(text, self.default)


def _tokens(content: str) -> list[str]:
    return re.findall(r"\s+|\w+|[^\w\s]", content)


def completion_body(answer: Answer, model: str, with_logprobs: bool) -> dict:
    content_logprobs = []
    wanted = {t.lower(): t for t in answer.alternatives}
    placed = False
    for token in _tokens(answer.content):
        entry = {"token": token, "logprob": 0.0, "bytes": list(token.encode()),
                 "top_logprobs": [{"token": token, "logprob": 0.0, "bytes": list(token.encode())}]}
        if not placed and token.strip().lower() in wanted:
            # The label token: the scripted alternatives, most likely first, as vLLM lists them.
            placed = True
            ranked = sorted(answer.alternatives.items(), key=lambda kv: -kv[1])
            entry["top_logprobs"] = [
                {"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in ranked if p > 0
            ]
            entry["logprob"] = math.log(answer.alternatives[wanted[token.strip().lower()]])
        content_logprobs.append(entry)
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.content, "tool_calls": []},
                "logprobs": {"content": content_logprobs} if with_logprobs else None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 200, "completion_tokens": len(content_logprobs), "total_tokens": 210},
        "prompt_logprobs": None,
    }


@contextmanager
def serve_fake_vllm() -> Iterator[FakeVLLM]:
    state = FakeVLLM()

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            state.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if self.path != "/v1/chat/completions":
                self.send_json(404, {"object": "error", "message": "Not Found", "type": "NotFoundError", "code": 404})
                return
            if state.mode == "500":
                self.send_json(500, {"object": "error", "message": "EngineCore encountered an issue",
                                 "type": "InternalServerError", "param": None, "code": 500})
                return
            if state.mode == "timeout":
                time.sleep(state.delay_s)
            if state.mode == "not-a-completion":
                self.send_json(200, {"object": "list", "data": []})
                return
            answer = state.answer_for(body)
            if state.mode == "malformed":
                answer = Answer("I'm sorry, but I can't help with classifying that message.")
            self.send_json(200, completion_body(answer, body.get("model", ""), state.mode != "no-logprobs"))

    with serve(Handler) as base_url:
        state.base_url = base_url
        yield state
