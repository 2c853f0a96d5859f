"""Progress of long model work, and a way to stop it.

A slow computation (a perturbation method's hundreds of forwards, the randomization check's
dozens of maps) announces its work with :func:`expect` and reports each part done with
:func:`advance`; both are no-ops unless a caller is watching, which it does by running the
computation inside ``with reporting(progress):``. The :class:`Progress` it passes counts
the work, tells its ``on_change`` callback, and, once :meth:`Progress.cancel` is called,
makes the next report raise :class:`Cancelled`, which ends the computation (nothing
half-done is cached: the map store keeps only finished results).

The tracker follows the thread that runs the computation (a context variable): the code in
between (the engine, the runner, the map store) passes nothing along. Torch-free, so the
dashboard can hold one.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator


class Cancelled(Exception):
    """The watcher asked the computation to stop."""


class Progress:
    """Work announced and done, in one unit (forwards, maps), and a cancel flag; thread-safe.

    ``on_change(progress)`` is called after every report, in the computing thread.
    A tracker made by :meth:`quiet` shares this one's cancel flag but counts nothing: for
    work nested inside a larger unit (a map of the randomization check computed by a method
    that reports forwards)."""

    def __init__(self, on_change: Callable[["Progress"], None] | None = None, *,
                 _cancel: threading.Event | None = None, _counting: bool = True):
        self.on_change = on_change
        self.done = 0
        self.total = 0
        self.started = time.monotonic()
        self._cancel = _cancel or threading.Event()
        self._counting = _counting
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or _STOPPING.is_set()

    def cancel(self) -> None:
        """Ask the computation to stop at its next report."""
        self._cancel.set()

    def quiet(self) -> "Progress":
        return Progress(_cancel=self._cancel, _counting=False)

    def expect(self, n: int) -> None:
        self._report(total=n)

    def advance(self, n: int = 1) -> None:
        self._report(done=n)

    def remaining_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first part is done)."""
        with self._lock:
            done, total = self.done, self.total
        if done <= 0 or total <= done:
            return None if done <= 0 else 0.0
        return (time.monotonic() - self.started) / done * (total - done)

    def _report(self, done: int = 0, total: int = 0) -> None:
        if self.cancelled:
            raise Cancelled("cancelled")
        if not self._counting:
            return
        with self._lock:
            self.done += done
            self.total += total
        if self.on_change is not None:
            self.on_change(self)


_CURRENT: ContextVar[Progress | None] = ContextVar("pixel_evidence_progress", default=None)
_STOPPING = threading.Event()  # the process is ending


def stop_all() -> None:
    """The process is ending: every watched computation stops at its next report."""
    _STOPPING.set()


@contextmanager
def reporting(progress: Progress | None) -> Iterator[Progress | None]:
    """Reports made in this thread inside the block go to ``progress``."""
    token = _CURRENT.set(progress)
    try:
        yield progress
    finally:
        _CURRENT.reset(token)


def current() -> Progress | None:
    return _CURRENT.get()


def expect(n: int) -> None:
    """Announce ``n`` more units of work to the watcher, if any (raises :class:`Cancelled`)."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.expect(n)


def advance(n: int = 1) -> None:
    """Report ``n`` units done to the watcher, if any (raises :class:`Cancelled`)."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.advance(n)
