"""Workflow search operations, written once for both adapters (queries in
``queries/workflow_search.sql``): a workflow's attributes set under its runner's fence,
together with the journal entry that records them; listings filtered on attributes;
counts by status and name.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from statekeeper.storage.rows import StepRecord, UnitResult
from statekeeper.storage.runner import Operations, Scripted

OPEN_LOW = float("-inf")
OPEN_HIGH = float("inf")


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """One attribute to store: its kind, and its value in the column of that kind (a
    keyword in ``text``, any other kind in ``number``); both None unsets it."""

    name: str
    kind: str
    text: str | None = None
    number: float | None = None


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    """One attribute filter: a keyword equal to ``text``, or a number in
    [``low``, ``high``] (None: open)."""

    name: str
    text: str | None = None
    low: float | None = None
    high: float | None = None

    @property
    def equality(self) -> bool:
        return self.text is not None or (self.low is not None and self.low == self.high)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Filters:
    """What a search selects: attributes (all must match), status, name, and a creation
    time range [``after``, ``before``)."""

    attributes: Sequence[AttributeFilter] = ()
    status: str | None = None
    name: str | None = None
    after: float = OPEN_LOW
    before: float = OPEN_HIGH


class SearchOps(Operations):
    """``contracts.SearchStorage``: searchable attributes, filtered listings, counts."""

    async def set_attributes(
        self, namespace: str, step: StepRecord, values: Sequence[AttributeValue], now: float
    ) -> UnitResult | None:
        """Record journal entry ``step`` and set ``values``, in one transaction, while the
        runner's fence holds: what was asked of the workflow (UnitResult), or
        UnitResult(applied=False) if the lease was lost. None (nothing written) if a value's
        kind is not its name's (``kinds`` says which)."""
        keys = {"namespace": namespace, "id": step.workflow_id}
        renew = self._bind(
            "wf_checkpoint_renew", lease_end=step.lease_end, now=now, fence=step.fence, **keys
        )
        record = self._bind(
            "wf_record_step", position=step.position, kind=step.kind, step_name=step.name,
            input=step.input, output=step.output, error=step.error, attempts=step.attempts,
            started_at=step.started_at, now=now, **keys,
        )  # fmt: skip
        script: list[Scripted] = [(renew, "first", True), (record, "rowcount", False)]
        for value in values:
            if value.text is None and value.number is None:
                script.append(
                    (self._bind("wf_attr_unset", attr=value.name, **keys), "rowcount", False)
                )
                continue
            script.append((self._bind(
                "wf_attr_kind_add", namespace=namespace, attr=value.name, kind=value.kind, now=now
            ), "rowcount", False))  # fmt: skip
            script.append((self._bind(
                "wf_attr_set", attr=value.name, kind=value.kind, text_value=value.text,
                number_value=value.number, now=now, **keys,
            ), "found", True))  # fmt: skip
        done = await self._db.run_atomic(script, f"cannot set attributes of {step.workflow_id!r}")
        if done is not None:
            return UnitResult.of_step(int(done[0]))
        if await self.owned(namespace, step):
            return None  # the fence holds: a kind was refused
        return UnitResult(applied=False)

    async def owned(self, namespace: str, step: StepRecord) -> bool:
        """Whether ``step``'s runner still holds its workflow (its fence, running)."""
        row = await self._db.run_read(
            self._bind("wf_get", namespace=namespace, id=step.workflow_id),
            f"cannot read workflow {step.workflow_id!r}", "row",
        )  # fmt: skip
        return row is not None and row[2] == "running" and row[6] == step.fence

    async def kinds(self, namespace: str, names: Sequence[str]) -> dict[str, str]:
        """The kind of each attribute name given that has one."""
        statement = self._bind(
            "wf_attr_kinds", namespace=namespace, **self._list_arg("names", names)
        )
        rows = await self._db.run_many(statement, "cannot read attribute kinds")
        return {str(name): str(kind) for name, kind in rows}

    async def attributes(self, namespace: str, id: str) -> list[tuple[str, str, Any, Any]]:
        """A workflow's attributes: (name, kind, text, number), by name."""
        statement = self._bind("wf_attr_of", namespace=namespace, id=id)
        rows = await self._db.run_many(statement, f"cannot read the attributes of {id!r}")
        return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    async def list(
        self, namespace: str, filters: Filters, *, before: tuple[float, str], limit: int
    ) -> list[tuple[Any, ...]]:
        """Workflows matching ``filters`` (which name at least one attribute), newest
        first, created before the cursor ``before``: (id, name, status, created_at,
        updated_at)."""
        query, args = self._driven("wf_search", namespace, filters)
        statement = self._bind(
            query, before_time=before[0], before_id=before[1], after_time=filters.after,
            limit=limit, **args,
        )  # fmt: skip
        return await self._db.run_many(statement, "cannot list workflows")

    async def counts(self, namespace: str, filters: Filters) -> builtins.list[tuple[str, str, int]]:
        """How many workflows match ``filters``: (status, name, count) per pair that has any."""
        if filters.attributes:
            query, args = self._driven("wf_count", namespace, filters)
        else:
            query = "wf_count"
            args = {"namespace": namespace, "status": filters.status, "name": filters.name}
        statement = self._bind(query, after_time=filters.after, before_time=filters.before, **args)
        rows = await self._db.run_many(statement, "cannot count workflows")
        return [(str(s), str(n), int(c)) for s, n, c in rows]

    def _driven(self, prefix: str, namespace: str, filters: Filters) -> tuple[str, dict[str, Any]]:
        """The statement driven by the most selective attribute filter (an equality, a
        keyword first), and its arguments; the other attribute filters as JSON."""
        ranked = sorted(
            range(len(filters.attributes)),
            key=lambda i: (not filters.attributes[i].equality, filters.attributes[i].text is None),
        )
        driver = filters.attributes[ranked[0]]
        rest = [filters.attributes[i].as_json() for i in ranked[1:]]
        args: dict[str, Any] = {
            "namespace": namespace, "attr": driver.name, "status": filters.status,
            "name": filters.name, "filters_json": json.dumps(rest),
        }  # fmt: skip
        if driver.text is not None:
            return f"{prefix}_text", {**args, "attr_text": driver.text}
        low = OPEN_LOW if driver.low is None else driver.low
        high = OPEN_HIGH if driver.high is None else driver.high
        return f"{prefix}_number", {**args, "number_low": low, "number_high": high}
