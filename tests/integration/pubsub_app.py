"""A subscriber app for the sidecar's pub/sub tests, run as its own process:

    python -m tests.integration.pubsub_app PORT RECORD_FILE SUBSCRIPTIONS_JSON

It answers ``GET /dapr/subscribe`` with SUBSCRIPTIONS_JSON, ``GET /healthz`` with 503
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


def create(record: Path, subscriptions: Any) -> Starlette:
    seen: set[str] = set()

    async def subscribe(request: Request) -> Response:
        return JSONResponse(subscriptions)

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
    uvicorn.run(create(record, subscriptions), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
