"""Waiting in async tests for something that happens in the background (a process to start or
end, a batch to reach a state), with a bound that fails the test rather than hanging it."""
from __future__ import annotations

import asyncio
import time


async def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)
