"""The per-image tab's one source of truth: what was asked for and what came back.

:class:`ExplanationStore` turns the state's choices (seed, split, image, methods, target)
into a request, asks the engine for the explanation off the server's threads, derives the
pictures, and publishes the answer. The per-image view, the analysis sections and the
download buttons all depend on the store and on nothing else that changes.

Computing is asynchronous: a request only schedules a coroutine, which awaits the engine in
a worker thread (the host's shared ``explain`` pool), so no Panel server thread ever waits for a
model. In a server session the coroutine runs on the session's event loop; without one (tests,
notebooks, the benchmark) Panel drives it to completion at once, so a state change returns with
the answer shown. A newer request supersedes an older one (:class:`~pixel_evidence.dashboard.newest.Newest`):
an answer that arrives after the user moved on is dropped.

In a server session the store lives as long as its session: when the session closes it lets go
of its answer and pictures and of the work still queued for it (:meth:`ExplanationStore.close`).
It tells the host about every request (the background fill runs only while people are around)
and about every view drawn (the fill never goes before the first).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

import panel as pn
import param

from pixel_evidence.dashboard.host import SHARED, EngineHost
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.newest import Newest
from pixel_evidence.dashboard.pictures import Pictures, make_pictures
from pixel_evidence.dashboard.session_memory import SESSIONS
from pixel_evidence.dashboard.state import DashboardState
from pixel_evidence.engine.contract import Engine
from pixel_evidence.engine.explanation import Explanation
from pixel_evidence.progress import Cancelled, Progress, reporting

log = logging.getLogger("pixel_evidence.dashboard")

SLOW_AFTER = 0.15  # seconds without an answer before ``computing`` is raised (the loading indicator)


@dataclass(frozen=True)
class Request:
    seed: int
    split: str
    image_id: str
    methods: tuple[str, ...]
    target: str

    @classmethod
    def of(cls, state: DashboardState) -> "Request":
        return cls(int(state.seed), state.split, state.image_id, tuple(state.methods), state.target)


class ExplanationStore(param.Parameterized):
    """The newest request, its explanation and pictures, or why there is none."""

    request = param.ClassSelector(class_=Request, default=None, allow_None=True,
                                  doc="The newest request (set at once, before its answer)")
    explanation = param.ClassSelector(class_=Explanation, default=None, allow_None=True,
                                      doc="The Explanation of the newest answered request")
    pictures = param.ClassSelector(class_=Pictures, default=None, allow_None=True, doc="Drawn from explanation")
    error = param.String(default="", doc="Why the newest request has no explanation ('' when it has one)")
    computing = param.Boolean(default=False, doc=f"The newest request has been waiting over {SLOW_AFTER} s")
    stopped = param.String(default="", doc="What the user stopped (HTML), until the next request")
    tracker = param.ClassSelector(class_=Progress, default=None, allow_None=True,
                                  doc="Progress of the newest request while slow methods compute (else None)")

    def __init__(self, state: DashboardState, engine: Engine, *, host: EngineHost | None = None, **params: Any):
        super().__init__(**params)
        self.state = state
        self.engine = engine
        self.host = host
        self.catalogue = state.catalogue
        self._lock = threading.RLock()
        self._requests = Newest(SHARED.explain, lock=self._lock)  # only the newest one's answer is published
        self._closed = False
        self._own_change = False  # the store itself changes the state's methods (a cancelled method)
        self.request = Request.of(state)  # asked for by the first refresh
        self._watcher = state.param.watch(lambda *_: self.refresh(), ["seed", "image_id", "methods", "target"])
        self._close_with_session()

    def _close_with_session(self) -> None:
        """In a server session, :meth:`close` when the session ends (elsewhere the owner calls it)."""
        doc = pn.state.curdoc
        context = doc.session_context if doc is not None else None
        if context is None:
            return
        if context.destroyed:  # the page was closed while the engine was still loading
            self.close()
            return
        SESSIONS.opened()

        def destroyed(_context: Any) -> None:
            try:
                self.close()
            finally:  # counted once Bokeh has finished with the session: it collects garbage right after this
                asyncio.get_running_loop().call_soon(SESSIONS.close)

        doc.on_session_destroyed(destroyed)

    @property
    def closed(self) -> bool:
        """The session has ended: nothing more is computed or drawn for it."""
        return self._closed

    def close(self) -> None:
        """Let go of this session's answer and pictures, and of its work: a request still queued
        is skipped, and so is the analysis sections' queued work (they check :attr:`closed`).

        The views are not told: their page is gone or going, and by the time this runs Bokeh
        may have dismantled their models (redrawing them then fails). They go with the session."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._requests.drop()  # whatever is queued or running for this store is dropped
        self.state.param.unwatch(self._watcher)
        with param.parameterized.discard_events(self):
            self.param.update(explanation=None, pictures=None, error="", computing=False)

    def refresh(self) -> None:
        """Ask for the state's current image (cached by the engine); returns without waiting.

        Called on every change of the state's request; the first call is the page's, once its
        views exist (an answer drawn while a view is still being built would race with it)."""
        if self._own_change:
            return
        req = Request.of(self.state)
        with self._lock:
            if self._closed:
                return
            number = self._requests.ask()
            self.request = req
            self.stopped = ""
            if not req.image_id or not req.methods:
                self.param.update(tracker=None, error="No images in this split and class." if not req.image_id
                                  else "Choose at least one method in the sidebar.", computing=False)
                return
            # slow methods report their forwards to it, and stop when it is cancelled
            self.tracker = Progress() if any(m in self.catalogue.slow_methods for m in req.methods) else None
            tracker = self.tracker
        if self.host is not None:
            self.host.background.touch()
        self._warm_split(req)
        pn.state.execute(partial(self._fetch, number, req, tracker))

    def _warm_split(self, req: Request) -> None:
        """Warm the rest of this split in the background, for the default methods only: a costly
        method (LIME, RISE, ...) is computed when someone asks for it, not for all images."""
        cheap = tuple(m for m in req.methods if m in self.catalogue.default_methods)
        if self.host is None or not cheap:
            return
        try:
            self.host.background.request(req.seed, req.split, cheap, req.target)
        except Exception:  # noqa: BLE001 - background warm-up only
            log.exception("precompute request failed")

    def _compute(self, req: Request, tracker: Progress | None = None) -> tuple[Explanation, Pictures]:
        with reporting(tracker):
            ex = self.engine.explain(req.seed, req.image_id, split=req.split, methods=req.methods, target=req.target)
        return ex, make_pictures(ex)

    def cancel(self) -> None:
        """Stop the newest request's slow methods; the view goes on without them (see ``_cancelled``)."""
        if self.tracker is not None:
            self.tracker.cancel()

    def _without_slow(self, req: Request) -> Request:
        """The user stopped the slow methods of ``req``: the state drops them (saying so), and
        the request for the others is returned; the caller asks for it (not the state's watcher)."""
        slow = [m for m in req.methods if m in self.catalogue.slow_methods]
        kept = [m for m in req.methods if m not in slow] or list(self.catalogue.default_methods)
        names = ", ".join(self.catalogue.method_labels[m] for m in slow)
        self._own_change = True
        try:
            self.state.methods = kept  # first: a change of methods clears the notices
        finally:
            self._own_change = False
        self.stopped = (f"Stopped computing {plain(names)}; showing the other methods. "
                        "Choose it again to start over.")
        return Request.of(self.state)

    async def _fetch(self, number: int, req: Request, tracker: Progress | None = None) -> None:
        # skipped when a newer request came while this one waited for a thread (quick clicks)
        answer = asyncio.wrap_future(self._requests.submit(number, self._compute, req, tracker))
        done, _ = await asyncio.wait({answer}, timeout=SLOW_AFTER)
        if not done:
            with self._lock:
                if self._requests.is_newest(number):
                    self.computing = True
        try:
            computed = await answer
        except Cancelled:
            with self._lock:
                if not self._requests.is_newest(number):
                    return
                req = self._without_slow(req)
                number = self._requests.ask()
                self.param.update(request=req, tracker=None)
            await self._fetch(number, req)  # in this coroutine: a nested one would wait for the next event
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the operator
            log.exception("explaining %s failed", req)
            with self._lock:
                if self._requests.is_newest(number):
                    self.param.update(error=f"Could not explain {plain(req.image_id)}: {plain(exc)}", computing=False, tracker=None)
                    self._drawn()
            return
        with self._lock:
            if computed is not None and self._requests.is_newest(number):  # else the user has moved on: dropped
                ex, pics = computed
                self.param.update(explanation=ex, pictures=pics, error="", computing=False, tracker=None)
                self._drawn()

    def _drawn(self) -> None:
        """An answer (or its error) is on screen: background work may start now."""
        if self.host is not None:
            self.host.background.view_drawn()
