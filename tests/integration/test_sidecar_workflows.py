"""Dapr's workflow API of ``statekeeper sidecar --app-module``: the sidecar process
starts, runs and reports the workflows of tests/integration/sidecar_workflow_app.py and
the state machines stored in its database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statekeeper import App
from statekeeper.asl.machines import StateMachines
from statekeeper.sidecar.context import SidecarConfig
from statekeeper.sidecar.http_app import create_sidecar_http
from statekeeper.sidecar.service import build_sidecar
from statekeeper.workflows import WorkflowContext
from tests.integration.sidecar_support import SidecarProcess, python_env, running_sidecar

APP_MODULE = "tests.integration.sidecar_workflow_app:app"
ADD = {
    "StartAt": "Add",
    "States": {
        "Add": {
            "Type": "Pass",
            "Parameters": {"sum.$": "States.MathAdd($.a, $.b)", "who.$": "$$.Execution.Name"},
            "End": True,
        }
    },
}


@pytest.fixture
def namespace() -> str:
    return f"wf_{secrets.token_hex(5)}"


@pytest.fixture
def sidecar(database_url: str, namespace: str, tmp_path: Path) -> Iterator[SidecarProcess]:
    env = {**python_env(), "STATEKEEPER_NAMESPACE": namespace}
    log = tmp_path / "sidecar.log"
    with running_sidecar(
        database_url, log, "--app-module", APP_MODULE, grpc=False, env=env, check_log=False
    ) as process:
        yield process
        # The failing workflow's traceback is logged, as it should be; no request failed.
        assert process.terminate() == 0, process.output()
        assert "unexpected error" not in process.output()


def wf(sidecar: SidecarProcess, path: str, version: str = "v1.0") -> str:
    return f"{sidecar.url}/{version}/workflows/dapr/{path}"


def settled(sidecar: SidecarProcess, id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The instance once it is no longer PENDING or RUNNING."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(wf(sidecar, id))
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        if document["runtimeStatus"] not in ("PENDING", "RUNNING"):
            return document
        assert time.monotonic() < deadline, document
        time.sleep(0.05)


def waiting(sidecar: SidecarProcess, id: str) -> None:
    """Until the approval workflow ``id`` waits for its event (it runs on the worker)."""
    deadline = time.monotonic() + 15
    while httpx.get(wf(sidecar, id)).json()["runtimeStatus"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def assert_dapr_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["errorCode"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_start_with_and_without_an_instance_id_runs_to_completed_then_purge(
    sidecar: SidecarProcess,
) -> None:
    started = httpx.post(wf(sidecar, "greet/start?instanceID=order-1_a"), json={"name": "ada"})
    assert started.status_code == 202, started.text
    assert started.json() == {"instanceID": "order-1_a"}
    chosen = httpx.post(wf(sidecar, "greet/start", "v1.0-beta1"), json={"name": "bob"})
    assert chosen.status_code == 202, chosen.text
    other = chosen.json()["instanceID"]
    assert other and other != "order-1_a"

    done = settled(sidecar, "order-1_a")
    assert done["instanceID"] == "order-1_a"
    assert done["workflowName"] == "greet"
    assert done["runtimeStatus"] == "COMPLETED"
    properties = done["properties"]
    assert json.loads(properties["dapr.workflow.input"]) == {"name": "ada"}
    output = json.loads(properties["dapr.workflow.output"])
    assert output == {"greeting": "HELLO ADA", "input": {"name": "ada"}}
    assert "dapr.workflow.failure.error_type" not in properties
    assert done["createdAt"].endswith("Z") and done["lastUpdatedAt"] >= done["createdAt"]
    second = settled(sidecar, other)
    assert json.loads(second["properties"]["dapr.workflow.output"])["greeting"] == "HELLO BOB"

    # The same id with the same input is the same instance; with other input, a conflict.
    again = httpx.post(wf(sidecar, "greet/start?instanceID=order-1_a"), json={"name": "ada"})
    assert again.status_code == 202 and again.json() == {"instanceID": "order-1_a"}
    clash = httpx.post(wf(sidecar, "greet/start?instanceID=order-1_a"), json={"name": "eve"})
    assert_dapr_error(clash, 409, "ERR_START_WORKFLOW")

    purged = httpx.post(wf(sidecar, "order-1_a/purge"))
    assert purged.status_code == 202, purged.text
    assert_dapr_error(httpx.get(wf(sidecar, "order-1_a")), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    assert_dapr_error(httpx.post(wf(sidecar, "order-1_a/purge")), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    assert httpx.get(wf(sidecar, other)).status_code == 200  # only that one is gone
    # Once purged, the id is free again.
    reused = httpx.post(wf(sidecar, "greet/start?instanceID=order-1_a"), json={"name": "cy"})
    assert reused.status_code == 202, reused.text
    assert "CY" in settled(sidecar, "order-1_a")["properties"]["dapr.workflow.output"]


def test_a_raised_event_reaches_the_waiting_workflow_and_terminate_cancels(
    sidecar: SidecarProcess,
) -> None:
    for id in ("wait-1", "wait-2"):
        answer = httpx.post(wf(sidecar, f"approval/start?instanceID={id}"), content=b'"req"')
        assert answer.status_code == 202, answer.text
    waiting(sidecar, "wait-1")
    waiting(sidecar, "wait-2")

    raised = httpx.post(wf(sidecar, "wait-1/raiseEvent/approved"), json={"by": "ops"})
    assert raised.status_code == 202, raised.text
    done = settled(sidecar, "wait-1")
    assert done["runtimeStatus"] == "COMPLETED"
    assert json.loads(done["properties"]["dapr.workflow.output"]) == {
        "decision": {"by": "ops"},
        "input": "req",
    }
    late = httpx.post(wf(sidecar, "wait-1/raiseEvent/approved"), json={"by": "late"})
    assert_dapr_error(late, 409, "ERR_RAISE_EVENT_WORKFLOW")

    # A running workflow cannot be purged; a suspended one is terminated all the same.
    assert_dapr_error(httpx.post(wf(sidecar, "wait-2/purge")), 409, "ERR_PURGE_WORKFLOW")
    assert httpx.post(wf(sidecar, "wait-2/pause")).status_code == 202
    assert httpx.get(wf(sidecar, "wait-2")).json()["runtimeStatus"] == "SUSPENDED"
    terminated = httpx.post(wf(sidecar, "wait-2/terminate"))
    assert terminated.status_code == 202, terminated.text
    assert settled(sidecar, "wait-2")["runtimeStatus"] == "TERMINATED"
    again = httpx.post(wf(sidecar, "wait-2/terminate"))
    assert_dapr_error(again, 409, "ERR_TERMINATE_WORKFLOW")
    assert httpx.post(wf(sidecar, "wait-2/purge")).status_code == 202


def test_a_suspended_workflow_takes_its_event_only_once_resumed(sidecar: SidecarProcess) -> None:
    answer = httpx.post(wf(sidecar, "approval/start?instanceID=hold-1"), content=b'"req"')
    assert answer.status_code == 202, answer.text
    waiting(sidecar, "hold-1")
    paused = httpx.post(wf(sidecar, "hold-1/pause"))
    assert paused.status_code == 202, paused.text
    assert httpx.post(wf(sidecar, "hold-1/pause")).status_code == 202  # again: no change
    assert settled(sidecar, "hold-1")["runtimeStatus"] == "SUSPENDED"

    raised = httpx.post(wf(sidecar, "hold-1/raiseEvent/approved"), json={"by": "ops"})
    assert raised.status_code == 202, raised.text  # kept for it
    time.sleep(0.5)  # the sidecar's worker polls meanwhile; the workflow stays suspended
    still = httpx.get(wf(sidecar, "hold-1")).json()
    assert still["runtimeStatus"] == "SUSPENDED", still
    assert "dapr.workflow.output" not in still["properties"]

    resumed = httpx.post(wf(sidecar, "hold-1/resume", "v1.0-beta1"))
    assert resumed.status_code == 202, resumed.text
    done = settled(sidecar, "hold-1")
    assert done["runtimeStatus"] == "COMPLETED", done
    assert json.loads(done["properties"]["dapr.workflow.output"]) == {
        "decision": {"by": "ops"},
        "input": "req",
    }
    # A finished instance cannot be suspended; resuming it changes nothing.
    assert_dapr_error(httpx.post(wf(sidecar, "hold-1/pause")), 409, "ERR_PAUSE_WORKFLOW")
    assert httpx.post(wf(sidecar, "hold-1/resume")).status_code == 202
    assert httpx.get(wf(sidecar, "hold-1")).json()["runtimeStatus"] == "COMPLETED"


def test_a_failing_workflow_is_failed_with_its_error(sidecar: SidecarProcess) -> None:
    answer = httpx.post(wf(sidecar, "checkout/start?instanceID=pay-9"), json={"card": "4111"})
    assert answer.status_code == 202, answer.text
    done = settled(sidecar, "pay-9")
    assert done["runtimeStatus"] == "FAILED"
    properties = done["properties"]
    assert "dapr.workflow.output" not in properties
    assert properties["dapr.workflow.failure.error_type"]
    assert "card 4111 was declined" in properties["dapr.workflow.failure.error_message"]
    assert "Traceback" not in json.dumps(done)


def test_a_state_machine_of_the_database_starts_by_name(
    sidecar: SidecarProcess, database_url: str, namespace: str
) -> None:
    async def create() -> None:
        async with App(database_url, namespace=namespace, purge_interval=None) as app:
            request = {"name": "adder", "definition": json.dumps(ADD)}
            await StateMachines(app).create(request)

    asyncio.run(create())
    answer = httpx.post(wf(sidecar, "adder/start?instanceID=sum-1"), json={"a": 2, "b": 40})
    assert answer.status_code == 202, answer.text
    done = settled(sidecar, "sum-1")
    assert done["workflowName"] == "adder"
    assert done["runtimeStatus"] == "COMPLETED", done
    assert json.loads(done["properties"]["dapr.workflow.input"]) == {"a": 2, "b": 40}
    assert json.loads(done["properties"]["dapr.workflow.output"]) == {"sum": 42, "who": "sum-1"}


def test_bad_requests_get_dapr_shaped_client_errors(sidecar: SidecarProcess) -> None:
    unknown = httpx.post(wf(sidecar, "nosuch/start"), json={})
    body = assert_dapr_error(unknown, 404, "ERR_START_WORKFLOW")
    assert "nosuch" in body["message"]
    for path in ("ghost", "ghost/terminate", "ghost/purge", "ghost/pause", "ghost/resume"):
        method = "GET" if path == "ghost" else "POST"
        answer = httpx.request(method, wf(sidecar, path))
        assert_dapr_error(answer, 404, "ERR_INSTANCE_ID_NOT_FOUND")
    ghost_event = httpx.post(wf(sidecar, "ghost/raiseEvent/approved"), json=1)
    assert_dapr_error(ghost_event, 404, "ERR_INSTANCE_ID_NOT_FOUND")

    malformed = httpx.post(wf(sidecar, "greet/start?instanceID=m1"), content=b"{not json")
    assert_dapr_error(malformed, 400, "ERR_MALFORMED_REQUEST")
    assert_dapr_error(httpx.get(wf(sidecar, "m1")), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    invalid = httpx.post(wf(sidecar, "greet/start?instanceID=a%20b"), json={"name": "x"})
    assert_dapr_error(invalid, 400, "ERR_INSTANCE_ID_INVALID")
    newline = httpx.post(wf(sidecar, "greet/start?instanceID=abc%0A"), json={"name": "x"})
    assert_dapr_error(newline, 400, "ERR_INSTANCE_ID_INVALID")
    long = httpx.post(wf(sidecar, f"greet/start?instanceID={'x' * 65}"), json={"name": "x"})
    assert_dapr_error(long, 400, "ERR_INSTANCE_ID_TOO_LONG")
    nameless = httpx.post(wf(sidecar, "%20/start"), json={})
    assert_dapr_error(nameless, 400, "ERR_WORKFLOW_NAME_MISSING")

    httpx.post(wf(sidecar, "approval/start?instanceID=w1"), json=None)
    bad_event = httpx.post(wf(sidecar, "w1/raiseEvent/approved"), content=b"[1,")
    assert_dapr_error(bad_event, 400, "ERR_MALFORMED_REQUEST")
    reserved = httpx.post(wf(sidecar, "w1/raiseEvent/child:x"), json=1)
    assert_dapr_error(reserved, 400, "ERR_RAISE_EVENT_WORKFLOW")
    weird = httpx.get(wf(sidecar, "a%20b"))
    assert_dapr_error(weird, 400, "ERR_INSTANCE_ID_INVALID")
    assert httpx.get(wf(sidecar, "w1")).json()["workflowName"] == "approval"


names = st.sampled_from(["echo", "nosuch", "", " ", "a:b", "é", "x" * 300, "%00", "child:x"])
ids = st.sampled_from(["w1", "", " ", "a b", "x" * 65, "x" * 300, "a:b", "é", "%2F", "w1/x"])
routes = st.sampled_from(
    [
        ("POST", "{name}/start"),
        ("POST", "{name}/start?instanceID={id}"),
        ("GET", "{id}"),
        ("POST", "{id}/raiseEvent/{name}"),
        ("POST", "{id}/terminate"),
        ("POST", "{id}/purge"),
        ("POST", "{id}/pause"),
        ("POST", "{id}/resume"),
        ("DELETE", "{id}"),
    ]
)
bodies = st.one_of(
    st.none().map(lambda _: b""),
    st.binary(max_size=40),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
)


async def test_no_workflow_request_gets_a_server_error(tmp_path: Path) -> None:
    """Any name, instance id, event name and body: a Dapr-shaped answer below 500, and
    what was accepted is readable."""
    async with App(f"sqlite:///{tmp_path}/db.sqlite", namespace="fuzz", encryption=None) as app:

        @app.workflow(name="echo")
        async def echo(ctx: WorkflowContext, input: Any) -> Any:
            return input

        sidecar = build_sidecar(app, SidecarConfig(app_id="f"))
        transport = httpx.ASGITransport(app=create_sidecar_http(sidecar))
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            loop = asyncio.get_running_loop()
            seen: list[int] = []

            @settings(
                max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            )  # fmt: skip
            @given(routes, names, ids, bodies, st.sampled_from(["v1.0", "v1.0-beta1"]))
            def probe(
                route: tuple[str, str], name: str, id: str, body: bytes, version: str
            ) -> None:
                method, template = route
                path = template.format(name=quote(name, safe=""), id=quote(id, safe="/%"))
                url = f"/{version}/workflows/dapr/{path}"
                request = client.request(method, url, content=body)
                answer = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=30)
                seen.append(answer.status_code)
                if answer.status_code == 202 and path.endswith(("/start", f"={id}")):
                    started = answer.json()["instanceID"]
                    follow = client.get(f"/v1.0/workflows/dapr/{quote(started, safe='')}")
                    got = asyncio.run_coroutine_threadsafe(follow, loop).result(timeout=30)
                    assert got.status_code == 200, got.text
                    seen.append(got.status_code)
                    return
                if answer.status_code >= 400:
                    problem = answer.json()
                    assert set(problem) == {"errorCode", "message"}, problem
                    assert "Traceback" not in problem["message"]
                assert answer.status_code < 500, answer.text

            await asyncio.to_thread(probe)
            assert {202, 200} <= set(seen)
            assert {400, 404} <= set(seen)
