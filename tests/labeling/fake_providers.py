"""A loopback HTTP server that speaks OpenAI's and Anthropic's wire formats, for the real SDKs.

The official `openai` and `anthropic` clients are pointed at it (`base_url`), so their own request
building, response parsing and error mapping run exactly as against the real services. It serves:

- OpenAI: POST /v1/chat/completions, POST /v1/files (multipart), GET /v1/files/{id}/content,
  POST /v1/batches, GET /v1/batches/{id}
- Anthropic: POST /v1/messages, POST /v1/messages/batches, GET /v1/messages/batches/{id},
  GET /v1/messages/batches/{id}/results

The "model" behind it is a deterministic stand-in (see `fake_wire`). Each provider has a script of
`Reply` values consumed one per judge call (then `default`), to inject 429s with Retry-After, 5xx,
slow answers, malformed verdicts, refusals or a position-biased model. Every request is recorded
with its arrival time. Used by tests/labeling, tests/app and bench/judge_throughput.py.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.labeling.fake_wire import (  # noqa: F401  (re-exported: tests script replies from here)
    BIASED,
    GARBAGE,
    MALFORMED,
    OK,
    REFUSAL,
    ProviderScript,
    Recorded,
    Reply,
    anthropic_message,
    error_body,
    fake_preference,
    openai_completion,
    rate_limited,
    server_error,
    slow,
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog (5) drops bursts of new connections, and each dropped SYN costs
    # a 1 s retransmit: 32 concurrent clients would measure the backlog, not the client.
    request_queue_size = 256


class FakeProviders:
    """Start with `with FakeProviders() as fake:`; base URLs in `openai_url` / `anthropic_url`."""

    def __init__(self, batch_polls_before_done: int = 1) -> None:
        self.openai = ProviderScript()
        self.anthropic = ProviderScript()
        self.requests: list[Recorded] = []
        self.batch_polls_before_done = batch_polls_before_done
        self.batch_failing_ids: set[str] = set()  # custom ids answered with an error inside a batch
        self.keep_requests = True  # a long benchmark turns the request log off
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return self.root + "/v1"

    @property
    def anthropic_url(self) -> str:
        return self.root

    def calls_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                name: {"calls": p.calls, "max_in_flight": p.max_in_flight}
                for name, p in (("openai", self.openai), ("anthropic", self.anthropic))
            }

    def reset_stats(self) -> None:
        with self._lock:
            for provider in (self.openai, self.anthropic):
                provider.calls = provider.max_in_flight = 0
            self.requests.clear()

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"

    # -- the model (see fake_wire) ------------------------------------------------------------
    def openai_completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return openai_completion(body, reply, self._new_id)

    def anthropic_message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return anthropic_message(body, reply, self._new_id)

    # -- batches ----------------------------------------------------------------------------
    def _finish_openai_batch(self, batch: dict[str, Any]) -> None:
        lines = self._files[batch["input_file_id"]].decode().splitlines()
        out, errors = [], []
        for n, line in enumerate(lines):
            request = json.loads(line)
            cid = request["custom_id"]
            if cid in self.batch_failing_ids:
                errors.append({"id": f"batch_req_{n}", "custom_id": cid, "response": {"status_code": 500, "request_id": f"req_{n}", "body": {"error": {"message": "server error", "type": "server_error"}}}, "error": None})
                continue
            completion = self.openai_completion(request["body"], OK)
            out.append({"id": f"batch_req_{n}", "custom_id": cid, "response": {"status_code": 200, "request_id": f"req_{n}", "body": completion}, "error": None})
        batch["output_file_id"] = self._store_file(out)
        batch["error_file_id"] = self._store_file(errors) if errors else None
        batch["status"] = "completed"
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}

    def _store_file(self, records: list[dict[str, Any]]) -> str:
        file_id = self._new_id("file-")
        self._files[file_id] = "".join(json.dumps(r) + "\n" for r in records).encode()
        return file_id

    def _anthropic_batch_view(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _finish_anthropic_batch(self, batch: dict[str, Any]) -> None:
        results = []
        for request in batch["_requests"]:
            cid = request["custom_id"]
            if cid in self.batch_failing_ids:
                result = {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}
            else:
                result = {"type": "succeeded", "message": self.anthropic_message(request["params"], OK)}
            results.append({"custom_id": cid, "result": result})
        batch["_results"] = results
        batch["processing_status"] = "ended"
        batch["ended_at"] = datetime.now(UTC).isoformat()
        batch["results_url"] = f"{self.root}/v1/messages/batches/{batch['id']}/results"
        succeeded = sum(1 for r in results if r["result"]["type"] == "succeeded")
        batch["request_counts"] = {"processing": 0, "succeeded": succeeded, "errored": len(results) - succeeded, "canceled": 0, "expired": 0}

    # -- HTTP -------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's algorithm holds the
                # body until the client's delayed ACK (~40 ms), which no real provider adds.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def _send(
                self,
                status: int,
                payload: Any,
                headers: tuple[tuple[str, str], ...] = (),
                raw: bytes | None = None,
                content_type: str | None = None,
            ) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                content_type = content_type or ("application/json" if raw is None else "application/octet-stream")
                try:
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(data)))
                    for name, value in headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (our timeout tests do that on purpose)

            def _body(self) -> tuple[bytes, Any]:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    return raw, json.loads(raw) if raw else None
                except ValueError:
                    return raw, None

            def _record(self, body: Any) -> None:
                if not fake.keep_requests:
                    return
                with fake._lock:
                    fake.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()))

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/_fake/stats":  # for a benchmark running the server in another process
                    return self._send(200, fake.stats())
                self._record(None)
                if m := re.fullmatch(r"/v1/files/([^/]+)/content", path):
                    data = fake._files.get(m.group(1))
                    return self._send(200, None, raw=data) if data is not None else self._send(404, {"error": {"message": "no such file"}})
                if m := re.fullmatch(r"/v1/batches/([^/]+)", path):
                    batch = fake._batches.get(m.group(1))
                    if batch is None:
                        return self._send(404, {"error": {"message": "no such batch"}})
                    batch["_polls"] += 1
                    if batch["status"] != "completed" and batch["_polls"] > fake.batch_polls_before_done:
                        fake._finish_openai_batch(batch)
                    return self._send(200, fake._anthropic_batch_view(batch))
                if m := re.fullmatch(r"/v1/messages/batches/([^/]+)/results", path):
                    batch = fake._batches.get(m.group(1))
                    raw = "".join(json.dumps(r) + "\n" for r in batch["_results"]).encode()
                    return self._send(200, None, raw=raw)
                if m := re.fullmatch(r"/v1/messages/batches/([^/]+)", path):
                    batch = fake._batches.get(m.group(1))
                    if batch is None:
                        return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "no such batch"}})
                    batch["_polls"] += 1
                    if batch["processing_status"] != "ended" and batch["_polls"] > fake.batch_polls_before_done:
                        fake._finish_anthropic_batch(batch)
                    return self._send(200, fake._anthropic_batch_view(batch))
                self._send(404, {"error": {"message": f"unknown path {path}"}})

            def do_POST(self) -> None:
                raw, body = self._body()
                path = self.path.split("?")[0]
                if path == "/_fake/reset":
                    fake.reset_stats()
                    return self._send(200, fake.stats())
                self._record(body if body is not None else raw)
                if path == "/v1/chat/completions":
                    return self._judge_call(fake.openai, body, fake.openai_completion, openai_style=True)
                if path == "/v1/messages":
                    return self._judge_call(fake.anthropic, body, fake.anthropic_message, openai_style=False)
                if path == "/v1/files":
                    return self._upload(raw)
                if path == "/v1/batches":
                    batch_id = fake._new_id("batch_")
                    lines = fake._files[body["input_file_id"]].decode().splitlines()
                    fake._batches[batch_id] = {
                        "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                        "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                        "status": "validating", "output_file_id": None, "error_file_id": None,
                        "created_at": int(time.time()), "metadata": body.get("metadata"),
                        "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "_polls": 0,
                    }
                    return self._send(200, fake._anthropic_batch_view(fake._batches[batch_id]))
                if path == "/v1/messages/batches":
                    batch_id = fake._new_id("msgbatch_")
                    now = datetime.now(UTC)
                    fake._batches[batch_id] = {
                        "id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                        "request_counts": {"processing": len(body["requests"]), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                        "created_at": now.isoformat(), "expires_at": (now + timedelta(days=1)).isoformat(),
                        "ended_at": None, "archived_at": None, "cancel_initiated_at": None, "results_url": None,
                        "_requests": body["requests"], "_polls": 0,
                    }
                    return self._send(200, fake._anthropic_batch_view(fake._batches[batch_id]))
                self._send(404, {"error": {"message": f"unknown path {path}"}})

            def _upload(self, raw: bytes) -> None:
                header = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
                fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
                data = fields["file"].get_payload(decode=True)
                purpose = fields["purpose"].get_content().strip()
                file_id = fake._new_id("file-")
                fake._files[file_id] = data
                self._send(200, {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                 "filename": fields["file"].get_filename(), "purpose": purpose, "status": "processed"})

            def _judge_call(self, provider: ProviderScript, body: Any, build: Any, *, openai_style: bool) -> None:
                with fake._lock:
                    reply = provider.next()
                    provider.in_flight += 1
                    provider.max_in_flight = max(provider.max_in_flight, provider.in_flight)
                try:
                    time.sleep(provider.latency_s + reply.delay_s)
                    self._answer(reply, body, build, openai_style=openai_style)
                finally:
                    with fake._lock:
                        provider.in_flight -= 1

            def _answer(self, reply: Reply, body: Any, build: Any, *, openai_style: bool) -> None:
                if reply.kind == "error":
                    return self._send(reply.status, error_body(reply.status, openai_style=openai_style), reply.headers)
                if reply.kind == "garbage":  # claims JSON, is not
                    return self._send(200, None, raw=b"<html>upstream proxy error</html>", content_type="application/json")
                self._send(200, build(body, reply), reply.headers)

        return Handler


def main() -> None:
    """Serve until stdin closes: `python -m tests.labeling.fake_providers --latency 0.3` prints its URL.

    Running the fake in its own process keeps its CPU work off the measured client's interpreter
    (a real provider's work does not run in our process either).
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every judge call")
    args = parser.parse_args()
    with FakeProviders() as fake:
        fake.openai.latency_s = fake.anthropic.latency_s = args.latency
        fake.keep_requests = False
        print(fake.root, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
