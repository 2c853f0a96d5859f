"""The background fill of the engine's cache: whole splits computed ahead of the clicks.

It is bounded so that it never competes with the people it is for: it starts only once a
session has drawn its first view, keeps at most a few splits in its queue (the newest wish
first), and pauses when no request has come for ``idle_after`` seconds, until the next one.
``BackgroundFill.state`` says what it is doing; tests wait for its states, not for the clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Iterable

from pixel_evidence.engine.contract import Engine

from pixel_evidence.methods import DEFAULT_METHODS

log = logging.getLogger("pixel_evidence.dashboard")

IDLE_AFTER_S = 600.0  # no request for this long: the fill pauses until the next one
MAX_PENDING = 3       # splits waiting to be filled; older wishes are dropped (asked again on a revisit)

# What the background fill is doing (``Fill.phase``)
OFF = "off"                                  # the configuration says no background work
WAITING_FOR_VIEW = "waiting for the first view"
FILLING = "filling"
PAUSED = "paused: no request lately"
IDLE = "idle"                                # nothing left to fill
STOPPED = "stopped"


@dataclass(frozen=True)
class Fill:
    """What the background fill is doing: its phase, the (seed, split) in hand, how far it got."""

    phase: str
    split: tuple[int, str] | None = None
    done: int = 0
    total: int = 0
    pending: int = 0


@dataclass(frozen=True)
class _Job:
    seed: int
    split: str
    methods: tuple[str, ...]
    target: str

    @property
    def key(self) -> tuple:
        return self.seed, self.split, tuple(sorted(self.methods)), self.target


class BackgroundFill:
    """Fills the engine's cache one split at a time, in a thread of its own.

    ``engine``: returns the engine once it is built, else None (asked at each request);
    ``enabled``: False makes every request a no-op (phase ``OFF``); ``idle_after``: seconds
    without a request (:meth:`touch`) after which the fill pauses; ``clock``: where time is
    read (tests pass their own).
    """

    def __init__(self, engine: Callable[[], Engine | None], *, enabled: bool, idle_after: float = IDLE_AFTER_S,
                 clock: Callable[[], float] = time.monotonic):
        self._engine = engine
        self._enabled = enabled
        self._idle_after, self._clock = idle_after, clock
        # all state lives under one condition that every change notifies
        self._cond = threading.Condition()
        self._state = Fill(WAITING_FOR_VIEW if enabled else OFF)
        self._pending: deque[_Job] = deque()
        self._asked: set[tuple] = set()  # jobs queued, in hand or done: each is asked for once
        self._view_drawn = False
        self._last_request = clock()
        self._halt: threading.Event | None = None  # stops the job in hand
        self._stopping = False
        self._worker: threading.Thread | None = None

    # --------------------------------------------------------------- what sessions tell the fill

    def touch(self) -> None:
        """A request came: the fill may run (again) for another ``idle_after`` seconds."""
        with self._cond:
            self._last_request = self._clock()
            self._cond.notify_all()

    def view_drawn(self) -> None:
        """A session has drawn a view: from now on the fill may run (it never goes first)."""
        with self._cond:
            if not self._view_drawn:
                self._view_drawn = True
                self._cond.notify_all()

    def request(self, seed: int, split: str, methods: Iterable[str] | None = None,
                target: str = "predicted") -> bool:
        """Queue a whole split, once per combination; True when the job was queued now.

        Jobs run one after another through ``engine.precompute``: one image at a time at
        background priority, so a person's click waits for at most one forward, and a
        stopping server is never held up by a half-done split. The newest job goes first;
        beyond ``MAX_PENDING`` waiting jobs the oldest is dropped. Nothing is queued while
        the engine is not built (or failed).
        """
        engine = self._engine() if self._enabled else None
        if engine is None:
            return False
        if methods is None:
            methods = DEFAULT_METHODS
        job = _Job(int(seed), split, tuple(methods), target)
        with self._cond:
            if job.key in self._asked or self._stopping:
                return False
            self._asked.add(job.key)
            self._pending.appendleft(job)  # what someone looks at now goes first
            while len(self._pending) > MAX_PENDING:
                self._asked.discard(self._pending.pop().key)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, args=(engine,), name="precompute", daemon=True)
                self._worker.start()
            self._publish(replace(self._state, pending=len(self._pending)))  # wakes a worker with nothing to do
        return True

    def stop(self) -> None:
        """Stop after the image in hand."""
        with self._cond:
            self._stopping = True
            if self._halt is not None:
                self._halt.set()
            if self._worker is None:
                self._set(STOPPED)
            self._cond.notify_all()

    # --------------------------------------------------------------- what it is doing

    @property
    def state(self) -> Fill:
        """What the fill is doing now."""
        with self._cond:
            return self._state

    def wait_for(self, predicate: Callable[[Fill], bool], timeout: float) -> Fill:
        """Wait until ``predicate(state)`` holds (TimeoutError after ``timeout`` seconds); the state then."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self._state), timeout):
                raise TimeoutError(f"background fill still {self._state} after {timeout:.0f} s")
            return self._state

    def _set(self, phase: str, split: tuple[int, str] | None = None, done: int = 0, total: int = 0) -> None:
        self._publish(Fill(phase, split, done, total, len(self._pending)))

    def _publish(self, state: Fill) -> None:
        """Make ``state`` the fill's state and wake whoever waits for a change (the condition is held)."""
        if state != self._state:
            self._state = state
            self._cond.notify_all()

    # --------------------------------------------------------------- the worker

    def _idle(self) -> bool:
        return self._clock() - self._last_request > self._idle_after

    def _next_job(self) -> _Job | None:
        """Wait until a job may run and take it; None once the fill stops."""
        with self._cond:
            while True:
                if self._stopping:
                    self._set(STOPPED)
                    return None
                if not self._view_drawn:
                    self._set(WAITING_FOR_VIEW)
                elif self._idle():
                    self._set(PAUSED)
                elif not self._pending:
                    self._set(IDLE)
                else:
                    job = self._pending.popleft()
                    log.info("background fill: seed %s %s split (%d more waiting)", job.seed, job.split,
                             len(self._pending))
                    self._halt = threading.Event()
                    self._set(FILLING, (job.seed, job.split))
                    return job
                self._cond.wait()

    def _work(self, engine: Engine) -> None:
        while (job := self._next_job()) is not None:
            size = len(engine.catalogue.image_ids(job.split))
            try:
                done = engine.precompute(job.seed, job.split, job.methods, job.target,
                                         progress=partial(self._progress, job), stop=self._halt).result()
            except Exception:  # noqa: BLE001 - background work only: the page reports real errors
                log.exception("background precompute of seed %s %s split failed", job.seed, job.split)
                done = size  # not tried again
            self._finish(job, done, size)

    def _progress(self, job: _Job, done: int, total: int) -> None:
        """After each image of the job in hand: publish, and halt it when nobody is around."""
        with self._cond:
            self._set(FILLING, (job.seed, job.split), done, total)
            if self._idle():
                self._halt.set()

    def _finish(self, job: _Job, done: int, size: int) -> None:
        with self._cond:
            self._halt = None
            if done == size:
                log.info("precomputed seed %s %s split (%d images)", job.seed, job.split, size)
            elif not self._stopping:
                self._pending.appendleft(job)  # the rest when someone comes back
                log.info("background fill paused after %d of %d images of seed %s %s: no request for %.0f s",
                         done, size, job.seed, job.split, self._idle_after)
