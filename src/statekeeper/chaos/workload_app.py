"""The app the chaos harness's worker hosts run (``statekeeper worker --app
statekeeper.chaos.workload_app:app``), and the tables it writes its effects to.

Every effect, a workflow step's or a message's, is a row keyed by what it is for, in a
table with a primary key, written as an idempotent handler writes (``ON CONFLICT DO
NOTHING``); each try is also counted in ``attempts`` with the host that made it, so a
run sees both what took effect (once) and what ran again after a fault. A workflow's
last step is a transaction step: its state write and its ``ledger`` message commit
with its checkpoint, exactly once; the ``ledger`` consumer records each message id it
sees, so a second message for one workflow would show as an effect applied twice.
Entity calls (signals, run by the workers) append their argument, a token unique to
the call, to the state of one of a few accounts: a token there twice is a call
applied twice, a token missing an acknowledged call lost.

Without a database for effects (no ``STATEKEEPER_CHAOS_DSN``: the disk-full scenario,
on SQLite, chaos/disk_full.py), an effect is a state item of the app itself
(``effect/KIND/KEY``, put only if absent) and tries are counted in the process.

Its environment (set by the harness; docs/configuration.md): this host's name,
recorded with each try; the database as this host reaches it; the lease of its
workflows and messages (3 s); the time a step or a message takes (0.005 s).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable

import asyncpg

from statekeeper import App, Message, Retry
from statekeeper.chaos.tables import APPLY
from statekeeper.constants import (
    ENV_CHAOS_DSN,
    ENV_CHAOS_HOST,
    ENV_CHAOS_LEASE,
    ENV_CHAOS_STEP_SECONDS,
)
from statekeeper.entities import EntityContext
from statekeeper.entities.signals import ENTITY_CALLS
from statekeeper.errors import AlreadyExists
from statekeeper.state.transaction import Transaction
from statekeeper.workflows import WorkflowContext

STEPS = 10

HOST = os.environ.get(ENV_CHAOS_HOST, "local")
DSN = os.environ.get(ENV_CHAOS_DSN, "")
LEASE = float(os.environ.get(ENV_CHAOS_LEASE, "3"))
STEP_SECONDS = float(os.environ.get(ENV_CHAOS_STEP_SECONDS, "0.005"))

# Without a database named (imported to be looked at), the default database.
URL = f"{DSN}{'&' if '?' in DSN else '?'}pool_max=12" if DSN else None
app = App(URL, namespace="chaos", purge_interval=None, entity_lease=LEASE)
app.workflows.lease = LEASE  # a lost host's workflows move on within seconds
app.queue("work", retry=Retry(max_attempts=100, initial_interval=0.05, max_delay=1.0),
          visibility_timeout=LEASE)  # fmt: skip
app.queue("ledger", retry=Retry(max_attempts=100, initial_interval=0.05, max_delay=1.0),
          visibility_timeout=LEASE)  # fmt: skip
app.queue(ENTITY_CALLS, retry=Retry(max_attempts=100, initial_interval=0.05, max_delay=1.0),
          visibility_timeout=LEASE)  # fmt: skip
account = app.entity("account", initial=list)
_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()
TRIES: Counter[str] = Counter()  # without DSN: tries by kind, in this process
EFFECT_TIMES: list[float] = []  # without DSN: when each effect took place


async def apply(kind: str, key: str) -> None:
    """Record a try and, once, its effect."""
    global _pool
    if not DSN:
        TRIES[kind] += 1
        try:
            await app.state.put(f"effect/{kind}/{key}", {"host": HOST}, only_if_absent=True)
        except AlreadyExists:
            return
        EFFECT_TIMES.append(time.time())
        return
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(DSN, min_size=1, max_size=8)
    await _pool.execute(APPLY, kind, key, HOST)


async def effect_step(workflow_id: str, step: int) -> int:
    await asyncio.sleep(STEP_SECONDS)
    await apply("step", f"{workflow_id}/{step}")
    return step


def book(workflow_id: str) -> Callable[[Transaction], int]:
    """The run's last step: a state write and a message, with the checkpoint."""

    def build(tx: Transaction) -> int:
        tx.put(f"booked/{workflow_id}", {"workflow": workflow_id})
        tx.send("ledger", {"workflow": workflow_id})
        return 0

    return build


@app.workflow
async def ten_steps(ctx: WorkflowContext, workflow_id: str) -> int:
    total = 0
    for step in range(STEPS):
        total += await ctx.step(effect_step, workflow_id, step)
    return total


@app.workflow
async def booking(ctx: WorkflowContext, workflow_id: str) -> int:
    """Three steps with effects, then a transaction step (exactly once)."""
    total = 0
    for step in range(3):
        total += await ctx.step(effect_step, workflow_id, step)
    total += await ctx.transaction(book(workflow_id))
    return total


async def nothing(step: int) -> int:
    return step


@app.workflow
async def ten_pure_steps(ctx: WorkflowContext, workflow_id: str) -> int:
    """Steps with no effect: what is left of a step is its checkpoint."""
    total = 0
    for step in range(STEPS):
        total += await ctx.step(nothing, step)
    return total


@app.consumer("work", concurrency=16)
async def apply_message(message: Message) -> str:
    await asyncio.sleep(STEP_SECONDS)
    await apply("message", message.id)
    return "applied"


@app.consumer("ledger", concurrency=8)
async def record_ledger(message: Message) -> str:
    """Each ledger message id once as an effect: two ids for one workflow would be a
    transaction step applied twice."""
    await apply("ledger", f"{message.body['workflow']}/{message.id}")
    return "recorded"


@account.handler
def deposit(ctx: EntityContext, token: str) -> int:
    """The call's token, kept in the account's state (committed once, with the call)."""
    ctx.state.append(token)
    return len(ctx.state)
