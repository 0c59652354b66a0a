"""The OpenAI-compatible backend against a loopback server speaking the completions wire protocol.

vLLM cannot run here, so a small HTTP server plays it: it answers ``POST /v1/completions`` the way vLLM does
(``echo`` + ``logprobs`` -> per-token ``token_logprobs`` and ``text_offset`` of the prompt), computing the numbers
with the tiny model. The official ``openai`` SDK does the HTTP and the parsing, so the backend is tested through
the real client code path.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from policies.action_policy import ActionPolicy
from policies.backends import BackendCapabilityError, OpenAICompatibleBackend


def _echo_logprobs(model, tokenizer, text: str) -> dict:
    enc = tokenizer(text=text, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    token_logprobs = [None] + [float(logp[i - 1, t]) for i, t in enumerate(enc["input_ids"]) if i > 0]
    next_id = int(logp[-1].argmax())
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"]) + [tokenizer.convert_ids_to_tokens(next_id)]
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs + [float(logp[-1, next_id])],
        "text_offset": [start for start, _ in enc["offset_mapping"]] + [len(text)],
        "top_logprobs": None,
    }


@pytest.fixture
def fake_server(tiny_causal_lm):
    model, tokenizer = tiny_causal_lm
    state = {"with_logprobs": True, "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append((self.path, body))
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices = []
            for i, prompt in enumerate(prompts):
                if body.get("echo"):
                    lp = _echo_logprobs(model, tokenizer, prompt) if state["with_logprobs"] else None
                    text = prompt
                else:
                    lp, text = None, f"reply {i} to {len(prompt)} chars"
                choices.append({"index": i, "text": text, "logprobs": lp, "finish_reason": "length"})
            payload = json.dumps({"id": "cmpl-test", "object": "text_completion", "created": 0,
                                  "model": body["model"], "choices": choices,
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    server.shutdown()
    server.server_close()


def test_remote_scores_match_local_scores(fake_server, tiny_backend, routing_type, tickets):
    base_url, state = fake_server
    remote = OpenAICompatibleBackend(base_url, "tiny", max_retries=0)
    local_policy = ActionPolicy(routing_type, tiny_backend)
    remote_policy = ActionPolicy(routing_type, remote)
    contexts = [t.context for t in tickets[:3]]
    assert [remote_policy.prompt(c) for c in contexts] == [local_policy.prompt(c) for c in contexts]
    remote_scores = remote_policy.score_batch(contexts)
    local_scores = local_policy.score_batch(contexts)
    for r, lo in zip(remote_scores, local_scores):
        assert np.allclose(list(r.values()), list(lo.values()), atol=1e-3)
    path, body = state["requests"][-1]
    assert path == "/v1/completions" and body["echo"] is True and body["model"] == "tiny"
    assert len(body["prompt"]) == len(contexts) * len(routing_type.action_ids)  # one request for the whole batch


def test_server_without_prompt_logprobs_is_a_clear_error(fake_server, routing_type, tickets):
    base_url, state = fake_server
    state["with_logprobs"] = False
    policy = ActionPolicy(routing_type, OpenAICompatibleBackend(base_url, "tiny", max_retries=0))
    with pytest.raises(BackendCapabilityError, match="no prompt log-probabilities"):
        policy.score_batch([tickets[0].context])


def test_remote_generation_uses_the_rendered_prompt(fake_server):
    base_url, state = fake_server
    backend = OpenAICompatibleBackend(base_url, "tiny", max_retries=0)
    prompt = backend.render([{"role": "user", "content": "hello"}])
    assert backend.generate([prompt, prompt + "x"], max_new_tokens=8, temperature=0.0) == [
        f"reply 0 to {len(prompt)} chars", f"reply 1 to {len(prompt) + 1} chars"]
    _, body = state["requests"][-1]
    assert body["stop"] == ["<|im_end|>"] and body["max_tokens"] == 8
