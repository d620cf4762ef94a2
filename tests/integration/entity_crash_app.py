"""A caller process of the entity crash test: ``python entity_crash_app.py URL WHO COUNT``
calls ``increment`` of entity ``tally``/``hot`` COUNT times with the call ids
``WHO-0`` ... (25 at a time), and prints ``id value`` for each answer as it comes. A run
started again after a SIGKILL calls every id again: the ones answered before get their
recorded answers."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from statekeeper import App
from statekeeper.entities import EntityContext

ENTITY, KEY = "tally", "hot"


def declare(app: App) -> None:
    tally = app.entity(ENTITY, initial=lambda: {"a": 0, "b": 0})

    @tally.handler
    async def increment(ctx: EntityContext, by: int) -> int:
        ctx.state["a"] += by  # two fields, an await between: a reader must never see
        await asyncio.sleep(0)  # one moved without the other
        ctx.state["b"] += by
        return int(ctx.state["a"])

    @tally.handler(readonly=True)
    def read(ctx: EntityContext) -> dict[str, Any]:
        return dict(ctx.state)


async def main(url: str, who: str, count: int) -> None:
    async with App(url, namespace="entity-crash", purge_interval=None, entity_lease=1.0) as app:
        declare(app)
        gate = asyncio.Semaphore(25)

        async def one(n: int) -> None:
            call_id = f"{who}-{n}"
            async with gate:
                value = await app.entities.call(ENTITY, KEY, "increment", 1, call_id=call_id)
            sys.stdout.write(f"{call_id} {value}\n")
            sys.stdout.flush()

        await asyncio.gather(*[one(n) for n in range(count)])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
