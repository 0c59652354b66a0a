"""Fixtures for the safety tests: a loopback stand-in for OpenAI's /v1/moderations endpoint and
shared local providers (built once per session: the profanity model takes a second to unpickle)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from safety.moderation import InjectionHeuristics, ProfanityModeration, train_harm_classifier
from safety.moderation.taxonomy import OPENAI_CATEGORIES
from tests.safety.loopback import JSONHandler, serve

CATEGORIES = OPENAI_CATEGORIES  # every category the real API answers with


def moderation_body(flags: list[dict[str, float]], model: str = "omni-moderation-latest") -> dict:
    """A /v1/moderations response in the real wire format: one result per input, every category
    present; `flags` maps the categories to flag (per input) to their scores."""
    results = []
    for flagged_scores in flags:
        scores = {c: flagged_scores.get(c, 0.0001) for c in CATEGORIES}
        results.append(
            {
                "flagged": bool(flagged_scores),
                "categories": {c: c in flagged_scores for c in CATEGORIES},
                "category_scores": scores,
                "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
            }
        )
    return {"id": "modr-loopback-1", "model": model, "results": results}


@dataclass
class FakeModerationAPI:
    """Behaviour of the loopback server; tests set `mode` and read `requests`.

    mode: "ok" (flag the categories in `flags` for every input), "500", "timeout" (answer after
    `delay_s`), "malformed" (200 with a body that is not a moderation response).
    """

    base_url: str = ""
    mode: str = "ok"
    flags: dict[str, float] = field(default_factory=dict)
    delay_s: float = 1.5
    requests: list[dict] = field(default_factory=list)


@pytest.fixture
def moderation_api() -> Iterator[FakeModerationAPI]:
    state = FakeModerationAPI()

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            state.requests.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            if self.path != "/v1/moderations":
                self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                return
            if state.mode == "500":
                self.send_json(
                    500,
                    {
                        "error": {
                            "message": "The server had an error",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
                return
            if state.mode == "timeout":
                time.sleep(state.delay_s)
            if state.mode == "malformed":
                self.send_json(200, {"object": "list", "data": []})
                return
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self.send_json(200, moderation_body([state.flags for _ in inputs], body.get("model", "")))

    with serve(Handler) as base_url:
        state.base_url = base_url
        yield state


@pytest.fixture(scope="session")
def harm_classifier():
    return train_harm_classifier([])


@pytest.fixture(scope="session")
def profanity():
    return ProfanityModeration()


@pytest.fixture(scope="session")
def injection():
    return InjectionHeuristics()
