"""A serverless-style shopping cart: every invocation starts with nothing in memory.

Each call to ``handle`` is what one function invocation would do: open the store,
read the cart, change it, write it back. Carts expire after an hour of inactivity
(TTL); concurrent invocations on the same cart never lose an item (``update``
retries on ETag conflicts); checkout moves the cart into an order and removes the
cart in one transaction, guarded by the cart's ETag so a late add is not lost.

    python examples/cart_handler.py            # on the default SQLite file
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from statekeeper import App, TransactionConflict

CART_TTL = 3600.0


async def handle(app: App, event: dict[str, Any]) -> dict[str, Any]:
    """One invocation: ``{"action": "add"|"view"|"checkout", "cart": id, ...}``."""
    key = f"cart:{event['cart']}"
    if event["action"] == "add":

        def add(cart: dict[str, Any] | None) -> dict[str, Any]:
            items = dict((cart or {}).get("items", {}))
            items[event["sku"]] = items.get(event["sku"], 0) + event.get("quantity", 1)
            return {"items": items}

        item = await app.state.update(key, add, ttl=CART_TTL)
        return {"status": 200, "cart": item.value, "etag": item.etag}
    if event["action"] == "view":
        found = await app.state.get(key)
        return {"status": 200, "cart": found.value} if found else {"status": 404}
    if event["action"] == "checkout":
        while True:
            cart = await app.state.get(key)
            if cart is None:
                return {"status": 404}
            order_key = f"order:{event['cart']}:{cart.etag}"
            try:
                async with app.state.transaction() as tx:
                    tx.put(order_key, {"items": cart.value["items"]}, only_if_absent=True)
                    tx.delete(key, if_match=cart.etag)
                return {"status": 201, "order": order_key}
            except TransactionConflict:
                continue  # the cart changed meanwhile: check out what it holds now
    return {"status": 400, "error": f"unknown action {event['action']!r}"}


async def main(database_url: str | None = None) -> None:
    async with App(database_url, namespace="cart-example") as app:
        # Twenty invocations adding to one cart at once, as a burst of requests would.
        await asyncio.gather(
            *(
                handle(app, {"action": "add", "cart": "c1", "sku": f"sku-{n % 4}"})
                for n in range(20)
            )
        )
        view = await handle(app, {"action": "view", "cart": "c1"})
        print("cart:", view["cart"])
        assert sum(view["cart"]["items"].values()) == 20, "an item was lost"
        order = await handle(app, {"action": "checkout", "cart": "c1"})
        print("checkout:", order)
        assert (await handle(app, {"action": "view", "cart": "c1"}))["status"] == 404


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
