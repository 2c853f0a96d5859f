"""The newest request wins, computed off the server's threads.

A view that computes its answer in a worker thread (the per-image store, each analysis
section, the Units tab's strips) numbers its requests with a :class:`Newest`. Work still
waiting for a thread when a newer request comes is skipped, and an answer that arrives
after the user moved on is dropped by whoever delivers it (:meth:`Newest.is_newest`), so a
page never shows numbers of an image it no longer shows.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor, Future
from typing import Callable, TypeVar

T = TypeVar("T")


class Newest:
    """Request numbers of one kind of answer; only the newest is computed and delivered.

    ``pool``: the worker threads that compute; ``live``: False once nothing may be computed
    any more (its session ended); ``lock``: held while a request is numbered, the owner's
    own lock when it changes other state in the same step.
    """

    def __init__(self, pool: Executor, *, live: Callable[[], bool] = lambda: True,
                 lock: threading.RLock | None = None):
        self._pool = pool
        self._live = live
        self.lock = lock if lock is not None else threading.RLock()
        self._number = 0

    def ask(self) -> int:
        """A new request's number: every older request is superseded."""
        with self.lock:
            self._number += 1
            return self._number

    def drop(self) -> None:
        """Supersede every request made so far (the answer on screen is going away)."""
        self.ask()

    def is_newest(self, number: int) -> bool:
        """Whether request ``number`` is still the one whose answer belongs on screen."""
        return number == self._number and self._live()

    def submit(self, number: int, compute: Callable[..., T], *args: object) -> Future[T | None]:
        """``compute(*args)`` in a worker thread for request ``number``; the future resolves
        to None, without computing, if a newer request came while it waited for a thread."""
        return self._pool.submit(lambda: compute(*args) if self.is_newest(number) else None)

    async def wait(self, number: int, compute: Callable[..., T], *args: object) -> T | None:
        """:meth:`submit`, awaited on the caller's event loop (which is never blocked)."""
        return await asyncio.wrap_future(self.submit(number, compute, *args))
