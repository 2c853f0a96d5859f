"""A re-entrant lock that serves interactive requests before slow and background work.

Every network call of the engine takes this lock, one forward at a time. A person's click
runs at ``INTERACTIVE`` priority (the default); the forwards of slow perturbation methods run
at ``SLOW`` (see ``explainers.runner``), and the background fill of the cache at
``BACKGROUND``. When the lock is released, the best-placed waiter gets it next: lowest
priority value first, then the longest-waiting. So a waiting click goes before the next
forward of a slow method or of the background fill; it never waits for a whole background
image or another person's slow method, only for the one forward running.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import threading
from contextlib import AbstractContextManager, contextmanager
from typing import Iterator

INTERACTIVE = 0
SLOW = 1
BACKGROUND = 2

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("pixel_evidence_priority", default=INTERACTIVE)


@contextmanager
def at_most(priority: int) -> Iterator[None]:
    """Run the block's model calls at ``priority`` or below, never above what they had
    (in this thread or task)."""
    token = _priority.set(max(priority, _priority.get()))
    try:
        yield
    finally:
        _priority.reset(token)


def background() -> AbstractContextManager:
    """Run the block's model calls at background priority."""
    return at_most(BACKGROUND)


def current_priority() -> int:
    return _priority.get()


class PriorityLock:
    """Re-entrant mutual exclusion; waiters are served by (priority, arrival)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._waiting: list[tuple[int, int, int]] = []  # heap of (priority, ticket, thread id)
        self._tickets = itertools.count()

    def acquire(self, priority: int | None = None) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            entry = (current_priority() if priority is None else priority, next(self._tickets), me)
            heapq.heappush(self._waiting, entry)
            while self._owner is not None or self._waiting[0] != entry:
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a PriorityLock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> PriorityLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """How many callers wait for the lock now (for tests and the benchmark)."""
        with self._cond:
            return len(self._waiting)
