"""Waiting for a state rather than for the clock (CI machines run at a load of 10 or more)."""

from __future__ import annotations

import gc
import time
import weakref


def wait_collected(refs: list[weakref.ref], timeout: float) -> list[str]:
    """Collect garbage until every referent is gone or ``timeout`` passes; the names still alive.

    A worker thread lets go of a finished job's closure a moment after its future resolves,
    so one collection right after the last future may come too early."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        alive = [type(ref()).__name__ for ref in refs if ref() is not None]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def wait_until(condition, timeout: float, poll: float = 0.05):
    """Poll ``condition()`` until it returns something truthy, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(poll)
