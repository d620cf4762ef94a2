"""Travel booking as a durable workflow with a saga.

Book a flight, a hotel and a car, then charge the payment. If the payment fails,
the bookings are cancelled in reverse order and the workflow ends ``compensated``,
with the payment's error kept. Every step is journaled: a worker that dies midway
is replaced by another that continues where it stopped, without booking twice.

    python examples/travel_booking.py        # both paths, on the default SQLite file
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from statekeeper import App, Retry
from statekeeper.workflows import WorkflowContext

app = App(namespace="travel")
ledger: list[str] = []  # stands for the partners' systems: what was booked and undone


class PaymentDeclined(Exception):
    pass


@app.function
async def book_flight(trip: dict[str, Any]) -> str:
    ledger.append(f"flight booked to {trip['to']}")
    return f"FL-{trip['id']}"


@app.function
async def book_hotel(trip: dict[str, Any]) -> str:
    ledger.append(f"hotel booked in {trip['to']}")
    return f"HO-{trip['id']}"


@app.function
async def book_car(trip: dict[str, Any]) -> str:
    ledger.append("car booked")
    return f"CA-{trip['id']}"


@app.function
async def charge(trip: dict[str, Any]) -> str:
    if trip["card"] == "declined":
        raise PaymentDeclined(f"card for trip {trip['id']} was declined")
    ledger.append(f"charged {trip['total']}")
    return f"PAY-{trip['id']}"


@app.function
async def refund(payment: str) -> None:
    ledger.append(f"refunded {payment}")


@app.function
async def cancel_booking(reference: str) -> None:
    ledger.append(f"cancelled {reference}")


@app.workflow
async def travel(ctx: WorkflowContext, trip: dict[str, Any]) -> dict[str, Any]:
    once = Retry(max_attempts=1)
    async with ctx.saga() as saga:
        flight = await saga.step(book_flight, trip, compensate=cancel_booking)
        hotel = await saga.step(book_hotel, trip, compensate=cancel_booking)
        car = await saga.step(book_car, trip, compensate=cancel_booking)
        payment = await saga.step(charge, trip, compensate=refund, retry=once)
    return {"flight": flight, "hotel": hotel, "car": car, "payment": payment}


async def walk_through(database_url: str | None = None) -> None:
    global app
    if database_url:
        registry = app.workflows.registry
        app = App(database_url, namespace="travel")
        app.workflows.registry.update(registry)
    async with app:
        worker = app.worker(poll=0.05)
        running = asyncio.create_task(worker.run())
        try:
            for card in ("ok", "declined"):
                ledger.clear()
                trip = {"id": f"trip-{card}", "to": "Lisbon", "total": 840, "card": card}
                run = await app.workflows.start(
                    travel, trip, id=f"{trip['id']}-{uuid.uuid4().hex[:8]}"
                )
                for _ in range(500):
                    status = await app.workflows.status(run)
                    if status.done:
                        break
                    await asyncio.sleep(0.02)
                print(f"\ntrip with card {card!r}: {status.status}")
                for line in ledger:
                    print(f"  {line}")
                if status.error:
                    print(f"  error kept: {status.error}")
                if card == "ok":
                    assert status.status == "succeeded", status
                    assert status.output["payment"] == "PAY-trip-ok"
                else:
                    assert status.status == "compensated", status
                    assert ledger[-3:] == [
                        "cancelled CA-trip-declined",
                        "cancelled HO-trip-declined",
                        "cancelled FL-trip-declined",
                    ]
        finally:
            worker.stop()
            await running
    print("\ntravel booking walk-through: every check passed")


if __name__ == "__main__":
    asyncio.run(walk_through(sys.argv[1] if len(sys.argv) > 1 else None))
