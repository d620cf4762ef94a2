"""HTTP endpoints as Task resources, against a real server on loopback: the payload
POSTed as JSON and the JSON answer the result; an answer that is not 2xx fails the
task with States.TaskFailed and the answer as cause; an address the outbound policy
refuses (loopback, unless allowed) is never reached."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from statekeeper import App
from statekeeper.asl.host import MemoryHost
from statekeeper.asl.interpreter import Execution, Outcome

received: list[Any] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append(body)
        status, answer = (500, {"message": "broken"}) if self.path == "/fail" else (
            200, {"doubled": body["n"] * 2, "type": self.headers["Content-Type"]}
        )  # fmt: skip
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(app: App, url: str, input: Any) -> Outcome:
    definition = {"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": url, "ResultPath": "$.answer", "End": True}}}  # fmt: skip

    async def go() -> Outcome:
        try:
            host = MemoryHost(app.task_functions.invoke)
            return await Execution(definition, input, host).run()
        finally:
            await app.close()

    return asyncio.run(go())


def test_an_allowed_endpoint_gets_the_payload_and_answers_the_result(endpoint: str) -> None:
    app = App("sqlite:///unused.db", purge_interval=None, callback_allow="127.0.0.1")
    outcome = run(app, endpoint + "/double", {"n": 21})
    assert outcome.status == "SUCCEEDED", outcome
    assert outcome.output == {"n": 21, "answer": {"doubled": 42, "type": "application/json"}}
    assert received[-1] == {"n": 21}


def test_a_failing_endpoint_fails_the_task_with_its_answer(endpoint: str) -> None:
    app = App("sqlite:///unused.db", purge_interval=None, callback_allow="127.0.0.1")
    outcome = run(app, endpoint + "/fail", {"n": 1})
    assert (outcome.status, outcome.error) == ("FAILED", "States.TaskFailed")
    cause = json.loads(outcome.cause or "")
    assert cause["statusCode"] == 500 and json.loads(cause["body"]) == {"message": "broken"}


def test_loopback_is_refused_unless_allowed(endpoint: str) -> None:
    before = len(received)
    app = App("sqlite:///unused.db", purge_interval=None, callback_allow="")
    outcome = run(app, endpoint + "/double", {"n": 2})
    assert (outcome.status, outcome.error) == ("FAILED", "States.TaskFailed")
    assert "refused" in (outcome.cause or "")
    assert len(received) == before  # nothing was sent
