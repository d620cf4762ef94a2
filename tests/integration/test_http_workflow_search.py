"""Workflow search over HTTP: list filters (attributes, time, status, name) with
cursors, counts, bulk operations with a dry run, and hostile filters answered 400
naming the parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.support import drive

TOKEN = "t0ken-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = 1_800_000_000.0


@pytest.fixture
async def served(
    database_url: str, namespace: str, clock: FakeClock
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, purge_interval=None, clock=clock)

    @app.workflow
    async def order(ctx: WorkflowContext, n: int) -> int:
        await ctx.set_attributes({"customer": f"c-{n % 2}", "amount": n * 10})
        await ctx.wait_for_event("go")
        return n

    async with app:
        for n in range(6):
            await app.workflows.start("order", n, id=f"o-{n}")
            clock.advance(1)
        await drive(app)
        http = create_http_app(app, HttpConfig(token=TOKEN, max_body_bytes=4096))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


async def test_list_filters_and_pages(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    got = await client.get(
        "/v1/workflows", params={"attr": ["customer=c-1", "amount>=20"], "limit": 1}, headers=AUTH
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert [w["id"] for w in body["items"]] == ["o-5"] and body["cursor"]
    rest = await client.get(
        "/v1/workflows",
        params={"attr": ["customer=c-1", "amount>=20"], "cursor": body["cursor"]},
        headers=AUTH,
    )
    assert [w["id"] for w in rest.json()["items"]] == ["o-3"] and rest.json()["cursor"] is None
    timed = await client.get(
        "/v1/workflows",
        params={"created_after": str(START + 2), "created_before": "2027-01-15T08:00:05+00:00",
                "status": "waiting", "name": "order"},
        headers=AUTH,
    )  # fmt: skip
    assert [w["id"] for w in timed.json()["items"]] == ["o-4", "o-3", "o-2"]


async def test_counts(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    got = await client.get("/v1/workflows/counts", params={"attr": "customer=c-0"}, headers=AUTH)
    assert got.status_code == 200
    assert got.json()["total"] == 3 and got.json()["by_name"] == {"order": 3}
    assert got.json()["by_status"]["waiting"] == 3


async def test_bulk_dry_run_then_cancel(served: tuple[App, httpx.AsyncClient]) -> None:
    app, client = served
    body = {"attributes": {"amount": {"lt": 30}}, "dry_run": True}
    dry = await client.post("/v1/workflows/bulk/cancel", json=body, headers=AUTH)
    assert dry.status_code == 200, dry.text
    assert dry.json()["matched"] == 3 and dry.json()["sample"] == ["o-2", "o-1", "o-0"]
    assert (await app.workflows.status("o-0")).status == "waiting"
    done = await client.post(
        "/v1/workflows/bulk/cancel", json={**body, "dry_run": False}, headers=AUTH
    )
    assert done.json()["changed"] == 3 and not done.json()["dry_run"]
    await drive(app)
    assert [(await app.workflows.status(f"o-{n}")).status for n in range(4)] == [
        "cancelled", "cancelled", "cancelled", "waiting",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "named"),
    [
        ("GET", "/v1/workflows", {"attr": "amount>>1"}, None, "attr"),
        ("GET", "/v1/workflows", {"attr": "amount>=ten"}, None, "amount"),
        ("GET", "/v1/workflows", {"status": "lost"}, None, "status"),
        ("GET", "/v1/workflows", {"limit": "many"}, None, "limit"),
        ("GET", "/v1/workflows", {"cursor": "zzz"}, None, "cursor"),
        ("GET", "/v1/workflows/counts", {"created_after": "soon"}, None, "created_after"),
        ("POST", "/v1/workflows/bulk/delete", {}, {"status": "waiting"}, "operation"),
        ("POST", "/v1/workflows/bulk/cancel", {}, {}, "filter"),
        ("POST", "/v1/workflows/bulk/cancel", {}, {"stauts": "waiting"}, "stauts"),
        ("POST", "/v1/workflows/bulk/cancel", {}, {"status": "waiting", "batch": 0}, "batch"),
        ("GET", "/v1/workflows", {"attr": "customer=\x00"}, None, "customer"),
        ("GET", "/v1/workflows", {"attr": "a=c\x07"}, None, "'a'"),
        ("GET", "/v1/workflows/counts", {"attr": "customer=\x00"}, None, "customer"),
        ("POST", "/v1/workflows/bulk/cancel", {}, {"attributes": {"customer": "\x00"}},
         "customer"),
        ("POST", "/v1/workflows/bulk/cancel", {}, {"attributes": {"amount": {"gte": "1\x00"}}},
         "amount"),
    ],
    ids=["attr-syntax", "attr-kind", "status", "limit", "cursor", "after", "operation",
         "no-filter", "unknown-field", "batch", "attr-nul", "attr-control", "counts-nul",
         "bulk-nul", "bulk-bound-nul"],
)  # fmt: skip
async def test_hostile_filters_are_400_naming_the_parameter(
    served: tuple[App, httpx.AsyncClient],
    method: str,
    path: str,
    params: dict[str, str],
    body: object,
    named: str,
) -> None:
    app, client = served
    got = await client.request(method, path, params=params, json=body, headers=AUTH)
    assert got.status_code == 400, got.text
    assert named in got.json()["error"]["message"]
    assert (await app.workflows.status("o-0")).status == "waiting"
