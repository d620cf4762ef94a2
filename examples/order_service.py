"""An order service in the CQRS + event sourcing style.

The write side: an order is the events of its stream, ``order-<id>``. A command reads
the stream, rebuilds the order by replaying its events, checks the order's rules (an
unpaid order does not ship, an order is paid once, a paid order's lines do not change,
a shipped one is not cancelled) and appends the events it decided with
``expected_version`` = the version it read. A command that raced another on the same
order gets WrongExpectedVersion and is decided again on what the other left. (The
repositories of ``app.events.aggregates`` package this loop, with snapshots; here it is
spelled out.)

The read side: projections keep read models from the event log (one summary per
order, one index per customer with its orders and what it spent, the revenue of each
day), and queries read them, never the streams. They lag the commands a little: a
query right after a command may not see it yet.

    statekeeper worker --app examples.order_service:app   # the projections
    uvicorn examples.order_service:api --port 8080         # the HTTP API, in another shell

    curl -X POST localhost:8080/orders -d '{"customer": "ada",
         "lines": [{"sku": "book", "quantity": 2, "price": 1250}]}'      # 202, its id
    curl -X POST localhost:8080/orders/<id>/ship    # 409: it is not paid yet
    curl -X POST localhost:8080/orders/<id>/pay     # 202
    curl localhost:8080/orders/<id>                 # {"status": "paid", "total": 2500, ...}
    curl localhost:8080/customers/ada/orders        # its orders, and what it spent

Both take the database from STATEKEEPER_DATABASE_URL (default: the SQLite file
.statekeeper/state.db); with STATEKEEPER_API_TOKEN set, the API wants it as a bearer
token. Prices are integers, in cents. ``statekeeper demo`` runs the service too.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper import App, ConflictError, StatekeeperError, ValidationError
from statekeeper.errors import NotFound, StreamNotFound, TooManyRetries, WrongExpectedVersion
from statekeeper.events import EventData, HandlerContext, RecordedEvent
from statekeeper.http.auth import BearerAuth
from statekeeper.http.body import read_json
from statekeeper.http.responses import answer_error, json_response

ATTEMPTS = 5  # how often a command that keeps racing others is decided again
PAGE = 1000  # events read from a stream at a time
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # order ids, customer ids, SKUs
# Why a command is refused, by the order's status.
_BECAUSE = {
    "placed": "it is not paid yet",
    "paid": "it is paid already",
    "shipped": "it has shipped",
    "cancelled": "it is cancelled",
}


class RuleViolation(ConflictError):
    """The order's rules refuse the command."""

    code = "rule_violation"


class OrderNotFound(NotFound):
    """There is no such order."""

    code = "order_not_found"


# --- the write side: an order is its events, replayed ----------------------------------


@dataclass
class Order:
    id: str
    version: int = 0  # the events applied: the stream's version (0: no order)
    customer: str = ""
    status: str = "new"  # placed -> paid -> shipped; placed or paid -> cancelled
    lines: dict[str, dict[str, int]] = field(default_factory=dict)  # sku: quantity, price
    paid: int = 0

    @property
    def total(self) -> int:
        return sum(line["quantity"] * line["price"] for line in self.lines.values())

    def apply(self, kind: str, data: Any) -> None:
        """One event's effect on the order (what replay and the projection both do)."""
        if kind == "OrderPlaced":
            self.customer, self.status = data["customer"], "placed"
            self.lines = {line["sku"]: _price(line) for line in data["lines"]}
        elif kind == "LineAdded":
            self.lines[data["sku"]] = _price(data)
        elif kind == "LineRemoved":
            self.lines.pop(data["sku"], None)
        elif kind == "OrderPaid":
            self.status, self.paid = "paid", data["amount"]
        elif kind == "OrderShipped":
            self.status = "shipped"
        elif kind == "OrderCancelled":
            self.status = "cancelled"
        self.version += 1

    def to_dict(self) -> dict[str, Any]:
        lines = [{"sku": sku, **line} for sku, line in self.lines.items()]
        return {"id": self.id, "customer": self.customer, "status": self.status,
                "lines": lines, "total": self.total, "paid": self.paid,
                "version": self.version}  # fmt: skip

    @classmethod
    def from_dict(cls, found: dict[str, Any]) -> Order:
        lines = {line["sku"]: _price(line) for line in found["lines"]}
        return cls(found["id"], found["version"], found["customer"], found["status"], lines,
                   found["paid"])  # fmt: skip


def _price(line: dict[str, Any]) -> dict[str, int]:
    return {"quantity": line["quantity"], "price": line["price"]}


def stream_of(order_id: str) -> str:
    return f"order-{order_id}"


async def load(app: App, order_id: str) -> Order:
    """The order rebuilt from its stream (version 0 and status ``new``: no such order)."""
    order = Order(order_id)
    while True:
        try:
            page = await app.events.read_stream(
                stream_of(order_id), start=order.version + 1, limit=PAGE
            )
        except StreamNotFound:
            return order
        for event in page:
            order.apply(event.type, event.data)
        if len(page) < PAGE:
            return order


Command = Callable[..., list[EventData]]


async def execute(
    app: App, order_id: str, command: Command, *args: Any, attempts: int = ATTEMPTS
) -> Order:
    """Decide ``command(order, *args)`` on the order as its stream has it and append the
    events decided, if nothing was appended since the stream was read; if something
    was, decide again. The order as the command left it."""
    check_name("order id", order_id)
    for _ in range(attempts):
        order = await load(app, order_id)
        events = command(order, *args)  # raises if the rules refuse it
        try:  # expected version 0 is NO_STREAM: the order is new
            await app.events.append(stream_of(order_id), events, expected_version=order.version)
        except WrongExpectedVersion:
            continue  # another command got there first: decide on what it left
        for event in events:
            order.apply(event.type, event.data)
        return order
    raise TooManyRetries(
        f"order {order_id} kept changing while the command was decided ({attempts} "
        "attempts); send it again"
    )


def _require(order: Order, doing: str, *allowed: str) -> None:
    if order.status == "new":
        raise OrderNotFound(f"there is no order {order.id!r}")
    if order.status not in allowed:
        raise RuleViolation(f"cannot {doing} order {order.id}: {_BECAUSE[order.status]}")


def place(order: Order, customer: object, lines: object) -> list[EventData]:
    if order.status != "new":
        raise RuleViolation(f"order {order.id} exists already")
    if not isinstance(lines, list) or not lines:
        raise ValidationError("lines must be a list of one or more lines")
    checked = [check_line(line) for line in lines]
    if len({line["sku"] for line in checked}) < len(checked):
        raise ValidationError("lines name a SKU twice")
    amount = sum(line["quantity"] * line["price"] for line in checked)
    customer_id = check_name("customer", customer)
    return [EventData("OrderPlaced", {"customer": customer_id, "lines": checked, "amount": amount})]


def add_line(order: Order, line: object) -> list[EventData]:
    checked = check_line(line)
    _require(order, "add a line to", "placed")
    if checked["sku"] in order.lines:
        raise RuleViolation(f"order {order.id} has a line of {checked['sku']} already")
    return [EventData("LineAdded", checked)]


def remove_line(order: Order, sku: str) -> list[EventData]:
    _require(order, "remove a line from", "placed")
    if sku not in order.lines:
        raise RuleViolation(f"order {order.id} has no line of {sku!r}")
    if len(order.lines) == 1:
        raise RuleViolation(f"{sku} is the last line of order {order.id}: cancel the order")
    return [EventData("LineRemoved", {"sku": sku})]


def pay(order: Order) -> list[EventData]:
    _require(order, "pay", "placed")
    return [EventData("OrderPaid", {"amount": order.total})]


def ship(order: Order) -> list[EventData]:
    _require(order, "ship", "paid")
    return [EventData("OrderShipped", {"amount": order.total})]


def cancel(order: Order) -> list[EventData]:
    _require(order, "cancel", "placed", "paid")
    return [EventData("OrderCancelled", {"amount": order.total, "refund": order.paid})]


def check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(f"{what} must be 1-64 letters, digits, '_', '.' or '-'")
    return value


def check_line(line: object) -> dict[str, Any]:
    """A line: ``{"sku", "quantity" (1-10000), "price" (cents, 0-10^9)}``."""
    if not isinstance(line, dict) or set(line) != {"sku", "quantity", "price"}:
        raise ValidationError("a line is an object with sku, quantity and price, no more")
    for name, low, high in (("quantity", 1, 10_000), ("price", 0, 10**9)):
        value = line[name]
        if type(value) is not int or not low <= value <= high:
            raise ValidationError(f"a line's {name} must be an integer from {low} to {high}")
    return {"sku": check_name("sku", line["sku"]), **_price(line)}


# --- the read side: projections keep the read models ------------------------------------


async def project_orders(event: RecordedEvent, view: HandlerContext) -> None:
    """One summary per order (``order/<id>``) and one per customer (``customer/<id>``)."""
    order_id = event.stream.partition("-")[2]
    found = await view.get(f"order/{order_id}")
    order = Order.from_dict(found) if found else Order(order_id)
    order.apply(event.type, event.data)
    view.put(f"order/{order_id}", order.to_dict())
    # What view.get returns is not changed in place: new values are put.
    key = f"customer/{order.customer}"
    customer = await view.get(key) or {"customer": order.customer, "orders": {}, "spent": 0}
    spent = customer["spent"]
    if event.type == "OrderPaid":
        spent += event.data["amount"]
    elif event.type == "OrderCancelled":
        spent -= event.data["refund"]
    orders = {**customer["orders"], order_id: {"status": order.status, "total": order.total}}
    view.put(key, {**customer, "orders": orders, "spent": spent})


STATUS_OF = {"OrderPlaced": "placed", "OrderPaid": "paid", "OrderShipped": "shipped",
             "OrderCancelled": "cancelled"}  # fmt: skip


async def project_revenue(event: RecordedEvent, view: HandlerContext) -> None:
    """Per day (UTC) and status: the orders that reached it that day, and their amount."""
    day = datetime.datetime.fromtimestamp(event.recorded_at, datetime.UTC).date().isoformat()
    revenue = await view.get(f"day/{day}") or {"day": day}
    status = STATUS_OF[event.type]
    before = revenue.get(status, {"orders": 0, "amount": 0})
    after = {"orders": before["orders"] + 1, "amount": before["amount"] + event.data["amount"]}
    view.put(f"day/{day}", {**revenue, status: after})


def build(app: App) -> App:
    """Register the projections on ``app`` (this module's, a test's, the demo's)."""
    app.projection("orders", category="order")(project_orders)
    app.projection("daily-revenue", category="order", types=list(STATUS_OF))(project_revenue)
    return app


# --- HTTP: commands answer 202 (or why not), queries read the read models ---------------


def create_api(app: App, *, token: str | None = None, opens_app: bool = False) -> Starlette:
    """The ASGI app of the service (``opens_app``: it opens and closes ``app`` itself)."""
    orders = app.projections.read_model("orders")
    revenue = app.projections.read_model("daily-revenue")

    async def run(order_id: str, command: Command, *args: Any) -> Response:
        order = await execute(app, order_id, command, *args)
        body = {"id": order.id, "status": order.status, "total": order.total,
                "version": order.version}  # fmt: skip
        return json_response(body, 202, {"Location": f"/orders/{order.id}"})

    async def body_of(request: Request) -> dict[str, Any]:
        _, body = await read_json(request, 64 * 1024, required=True)
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        return body

    async def place_order(request: Request) -> Response:
        body = await body_of(request)
        order_id = body.get("id") or uuid.uuid4().hex[:12]
        return await run(order_id, place, body.get("customer"), body.get("lines"))

    async def add(request: Request) -> Response:
        return await run(request.path_params["id"], add_line, await body_of(request))

    async def remove(request: Request) -> Response:
        return await run(request.path_params["id"], remove_line, request.path_params["sku"])

    def plain(command: Command) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await run(request.path_params["id"], command)

        return endpoint

    async def get_order(request: Request) -> Response:
        found = await orders.get(f"order/{request.path_params['id']}")
        if found is None:
            raise OrderNotFound(f"there is no order {request.path_params['id']!r} (yet)")
        return json_response(found)

    async def customer_orders(request: Request) -> Response:
        customer = request.path_params["id"]
        found = await orders.get(f"customer/{customer}", {"orders": {}, "spent": 0})
        listed = [{"id": key, **value} for key, value in sorted(found["orders"].items())]
        return json_response({"customer": customer, "orders": listed, "spent": found["spent"]})

    async def day_revenue(request: Request) -> Response:
        day = request.path_params["day"]
        return json_response(await revenue.get(f"day/{day}", {"day": day}))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with app:
            yield

    return Starlette(
        routes=[
            Route("/orders", place_order, methods=["POST"]),
            Route("/orders/{id}/lines", add, methods=["POST"]),
            Route("/orders/{id}/lines/{sku}", remove, methods=["DELETE"]),
            Route("/orders/{id}/pay", plain(pay), methods=["POST"]),
            Route("/orders/{id}/ship", plain(ship), methods=["POST"]),
            Route("/orders/{id}/cancel", plain(cancel), methods=["POST"]),
            Route("/orders/{id}", get_order, methods=["GET"]),
            Route("/customers/{id}/orders", customer_orders, methods=["GET"]),
            Route("/revenue/{day}", day_revenue, methods=["GET"]),
        ],
        middleware=[Middleware(BearerAuth, token=token)] if token else [],
        exception_handlers={StatekeeperError: answer_error},
        lifespan=lifespan if opens_app else None,
    )


app = build(App(namespace="orders"))
api = create_api(app, token=os.environ.get("STATEKEEPER_API_TOKEN"), opens_app=True)
