"""A subscriber app for the sidecar's pub/sub tests, run as its own process:

    python -m tests.integration.pubsub_app PORT RECORD_FILE SUBSCRIPTIONS_JSON [FIRST_ANSWERS]

It answers ``GET /dapr/subscribe`` with SUBSCRIPTIONS_JSON (after FIRST_ANSWERS, a
comma-separated list of bad answers for its first calls: a status such as ``503``,
``notjson``, ``object`` (a JSON object), ``deep`` (arrays nested 100,000 deep) or
``huge`` (a 2 MiB array); each call is counted as a line in a file beside RECORD_FILE
named ``<its stem>.subscribe``), ``GET /healthz`` with 503
while a file beside RECORD_FILE named ``<its stem>.unhealthy`` exists (else 204), and
records every delivery
(arrival time, path, content type, traceparent, body) as a JSON line in RECORD_FILE. How a route
answers is told by its name:

    /ok/...          200, empty body
    /success/...     200 {"status": "SUCCESS"}
    /retry-once/...  {"status": "RETRY"} the first time an event id comes, then SUCCESS
    /drop/...        200 {"status": "DROP"}
    /fail/...        500 always
    /slow/...        records at once, waits 2 seconds, then 200
    anything else    404
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def create(record: Path, subscriptions: Any, first_answers: list[str]) -> Starlette:
    seen: set[str] = set()
    bad = list(first_answers)

    async def subscribe(request: Request) -> Response:
        with record.with_suffix(".subscribe").open("a", encoding="utf-8") as calls:
            calls.write(f"{time.time()}\n")
        if not bad:
            return JSONResponse(subscriptions)
        answer = bad.pop(0)
        if answer == "notjson":
            return Response("not json", media_type="application/json")
        if answer == "object":
            return JSONResponse({"subscriptions": subscriptions})
        if answer == "deep":
            return Response("[" * 100_000 + "]" * 100_000, media_type="application/json")
        if answer == "huge":
            return JSONResponse(["x" * 1000] * 2048)
        return JSONResponse({"error": "not ready"}, status_code=int(answer))

    async def healthz(request: Request) -> Response:
        unhealthy = record.with_suffix(".unhealthy").exists()
        return Response(status_code=503 if unhealthy else 204)

    async def deliver(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        path = request.url.path
        kind = path.strip("/").split("/", 1)[0]
        event_id = body.get("id") if isinstance(body, dict) else None
        entry = {
            "at": time.time(),  # when the request arrived
            "path": path,
            "content_type": request.headers.get("content-type"),
            "traceparent": request.headers.get("traceparent"),
            "pubsubname": request.headers.get("pubsubname"),
            "body": body,
        }
        with record.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(entry) + "\n")
        if kind == "slow":
            await asyncio.sleep(2.0)
        if kind == "ok" or kind == "slow":
            return Response(status_code=200)
        if kind == "success":
            return JSONResponse({"status": "SUCCESS"})
        if kind == "retry-once":
            if event_id in seen:
                return JSONResponse({"status": "SUCCESS"})
            seen.add(str(event_id))
            return JSONResponse({"status": "RETRY"})
        if kind == "drop":
            return JSONResponse({"status": "DROP"})
        if kind == "fail":
            return JSONResponse({"error": "failing on purpose"}, status_code=500)
        return Response(status_code=404)

    return Starlette(
        routes=[
            Route("/dapr/subscribe", subscribe, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{rest:path}", deliver, methods=["POST"]),
        ]
    )


def main() -> None:
    port, record, subscriptions = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    first_answers = [a for a in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if a]
    app = create(record, subscriptions, first_answers)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
