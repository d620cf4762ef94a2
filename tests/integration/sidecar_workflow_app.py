"""The app whose workflows the sidecar workflow tests run (``statekeeper sidecar
--app-module tests.integration.sidecar_workflow_app:app``): its database and namespace
come from the command line and the environment."""

from __future__ import annotations

from typing import Any

from statekeeper import App, Retry
from statekeeper.workflows import WorkflowContext

app = App(purge_interval=None)


@app.function
async def shout(name: str) -> str:
    return f"HELLO {name.upper()}"


@app.function
async def charge(card: str) -> str:
    raise ValueError(f"card {card} was declined")


@app.workflow
async def greet(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    greeting = await ctx.step(shout, input["name"])
    return {"greeting": greeting, "input": input}


@app.workflow
async def approval(ctx: WorkflowContext, input: Any) -> dict[str, Any]:
    decision = await ctx.wait_for_event("approved", timeout=600)
    return {"decision": decision, "input": input}


@app.workflow
async def checkout(ctx: WorkflowContext, input: dict[str, Any]) -> str:
    return await ctx.step(charge, input["card"], retry=Retry(max_attempts=1))
