"""A concurrency cap with a FIFO queue and two priorities: live requests before batch work."""
from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager

LIVE, BACKGROUND = 0, 1


class Limiter:
    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self.active = 0
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._order = itertools.count()

    @property
    def queued(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    def resize(self, capacity: int) -> None:
        self.capacity = max(1, int(capacity))
        self._wake()

    def _wake(self) -> None:
        self._waiters.sort(key=lambda w: (w[0], w[1]))
        while self._waiters and self.active < self.capacity:
            _, _, fut = self._waiters.pop(0)
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    async def acquire(self, priority: int = LIVE) -> None:
        if self.active < self.capacity and not self._waiters:
            self.active += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((priority, next(self._order), fut))
        self._wake()
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()       # granted, then cancelled: give the slot back
            else:
                fut.cancel()
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    @asynccontextmanager
    async def slot(self, priority: int = LIVE):
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()
