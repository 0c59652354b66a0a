"""Fixtures for the safety tests: a loopback stand-in for OpenAI's /v1/moderations endpoint and
shared local providers (built once per session: the profanity model takes a second to unpickle)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from safety.moderation import InjectionHeuristics, ProfanityModeration, train_harm_classifier

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


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

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            if self.path != "/v1/moderations":
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                return
            if state.mode == "500":
                self._send(
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
                self._send(200, {"object": "list", "data": []})
                return
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self._send(200, moderation_body([state.flags for _ in inputs], body.get("model", "")))

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            # In "timeout" mode the client hangs up before the reply: expected, not worth a traceback.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def harm_classifier():
    return train_harm_classifier([])


@pytest.fixture(scope="session")
def profanity():
    return ProfanityModeration()


@pytest.fixture(scope="session")
def injection():
    return InjectionHeuristics()
