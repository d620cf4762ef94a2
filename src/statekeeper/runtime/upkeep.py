"""Upkeep: the app's housekeeping as a supervised service.

Every ``purge_interval`` seconds it purges expired state and forgets old records
(expired idempotency keys and deduplication claims, archived messages past their
retention); every ``maintenance_interval`` seconds it keeps the tables healthy
(vacuum and analyze on PostgreSQL). A failed round is logged and tried again at
the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from statekeeper.errors import StatekeeperError
from statekeeper.storage.rows import Maintenance

log = logging.getLogger("statekeeper.app")


class Upkeep:
    name = "upkeep"

    def __init__(
        self,
        *,
        purge: Callable[[], Awaitable[int]],
        forget: Callable[[], Awaitable[int]],
        maintain: Callable[[], Awaitable[Maintenance]],
        purge_interval: float,
        maintenance_interval: float | None,
    ) -> None:
        self._purge = purge
        self._forget = forget
        self._maintain = maintain
        self.purge_interval = purge_interval
        self.maintenance_interval = maintenance_interval

    async def run(self, stopping: asyncio.Event) -> None:
        loops = [asyncio.create_task(self._every(self.purge_interval, self._purge_round))]
        if self.maintenance_interval:
            loops.append(
                asyncio.create_task(self._every(self.maintenance_interval, self._maintain_round))
            )
        try:
            await stopping.wait()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    @staticmethod
    async def _every(interval: float, round: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await round()
            except Exception as error:  # a bug, not the database: logged, tried again
                log.error("upkeep round failed", exc_info=error)

    async def _purge_round(self) -> None:
        try:
            purged = await self._purge()
        except StatekeeperError as error:
            log.warning(
                "purging expired state failed", exc_info=error, extra={"error": error.message}
            )
            return
        if purged:
            log.info("purged expired state", extra={"purged": purged})
        try:
            await self._forget()
        except StatekeeperError as error:
            log.warning(
                "forgetting old records failed", exc_info=error, extra={"error": error.message}
            )

    async def _maintain_round(self) -> None:
        try:
            done = await self._maintain()
        except StatekeeperError as error:
            log.warning("table maintenance failed", exc_info=error, extra={"error": error.message})
            return
        if done.vacuumed or done.analyzed:
            log.debug(
                "tables maintained", extra={"vacuumed": done.vacuumed, "analyzed": done.analyzed}
            )
