"""The application that ``bench/soak.py`` serves: an order queue whose consumer keeps a
per-customer count in the state store and starts a fulfilment workflow for every tenth
order (three steps and a one-second durable sleep). Not a benchmark itself.

Configured from the environment by soak.py: ``SOAK_DATABASE_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from statekeeper import App, Message, Retry
from statekeeper.workflows import WorkflowContext

app = App(
    os.environ["SOAK_DATABASE_URL"],
    namespace="soak",
    purge_interval=10.0,
    archive_retention=60.0,  # acknowledged orders kept a minute: the archive stays bounded
    encryption=None,
)
app.queue("orders", retry=Retry(max_attempts=5, initial_interval=0.5))


async def reserve(order: dict[str, Any]) -> str:
    return f"reserved:{order['n']}"


async def charge(order: dict[str, Any]) -> int:
    return int(order["n"]) % 97


async def notify(order: dict[str, Any], amount: int) -> bool:
    return amount >= 0


@app.workflow
async def fulfil(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    reservation = await ctx.step(reserve, order)
    amount = await ctx.step(charge, order)
    await ctx.sleep(1.0)
    await ctx.step(notify, order, amount)
    return {"reservation": reservation, "amount": amount}


@app.consumer("orders", concurrency=16)
async def take_order(message: Message) -> dict[str, Any]:
    order = message.body
    customer = f"customer:{int(order['n']) % 500}"
    await app.state.update(customer, lambda count: (count or 0) + 1)
    if int(order["n"]) % 10 == 0:
        await app.workflows.start("fulfil", order, id=f"order-{message.id}")
    return {"customer": customer}
