"""A re-entrant lock that serves interactive requests before slow and background work.

Every network call of the engine takes this lock, one forward at a time. A person's click
runs at ``INTERACTIVE`` priority (the default); the forwards of slow perturbation methods run
at ``SLOW`` (see ``explainers.runner``), and the background fill of the cache at
``BACKGROUND``. When the lock is released, the best-placed waiter gets it next: lowest
priority value first, then the longest-waiting. A click's forwards come with gaps (its
backward passes, its scores), in which no click waits; so that slow or background work does
not slip into them, it also gives way for ``grace`` seconds after each interactive forward.
A click therefore waits for at most the one forward running when it arrives, never for a
whole background image or another person's slow method.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import threading
import time
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
    """Re-entrant mutual exclusion; waiters are served by (priority, arrival), and callers
    below interactive priority give way for ``grace`` seconds after an interactive release.

    The default grace covers the gaps between a cold click's forwards measured on a 2-core
    CPU at 224 px (each under 0.2 s: an IG chunk's backward, the scores); background work
    loses at most that much per click.
    """

    def __init__(self, grace: float = 0.3) -> None:
        self._grace = grace
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._owner_priority = INTERACTIVE
        self._depth = 0
        self._waiting: list[tuple[int, int, int]] = []  # heap of (priority, ticket, thread id)
        self._tickets = itertools.count()
        self._last_interactive = -float("inf")  # when an interactive caller last released

    def acquire(self, priority: int | None = None) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            entry = (current_priority() if priority is None else priority, next(self._tickets), me)
            heapq.heappush(self._waiting, entry)
            while True:
                if self._owner is None and self._waiting[0] == entry:
                    hold = self._holdback(entry[0])
                    if hold <= 0:
                        break
                    self._cond.wait(hold)
                else:
                    self._cond.wait()
            heapq.heappop(self._waiting)
            self._owner, self._owner_priority, self._depth = me, entry[0], 1

    def _holdback(self, priority: int) -> float:
        """Seconds a caller of ``priority`` still gives way to the last interactive one."""
        if priority == INTERACTIVE:
            return 0.0
        return self._last_interactive + self._grace - time.monotonic()

    @property
    def grace(self) -> float:
        return self._grace

    @grace.setter
    def grace(self, seconds: float) -> None:
        with self._cond:  # waiters re-check their hold-back at once
            self._grace = seconds
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a PriorityLock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                if self._owner_priority == INTERACTIVE:
                    self._last_interactive = time.monotonic()
                self._cond.notify_all()

    def __enter__(self) -> PriorityLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held_here(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._owner == threading.get_ident()

    @property
    def waiting(self) -> int:
        """How many callers wait for the lock now (for tests and the benchmark)."""
        with self._cond:
            return len(self._waiting)
