"""A line that says how far a long computation is, and a button that stops it.

The computation runs in a worker thread under ``pixel_evidence.progress.reporting``; its reports
arrive there, and the line is redrawn on the session's event loop, at most a few times a
second. Used for a slow method's maps (RISE, Score-CAM) and the randomization check.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import panel as pn
from panel.io.state import set_curdoc

from pixel_evidence.dashboard.markup import plain
from pixel_evidence.progress import Progress

EVERY_S = 0.3  # the line is redrawn at most this often


def on_session(doc: Any, fn: Callable[[], None]) -> None:
    """Run ``fn`` on the session's event loop (at once without a server: tests, notebooks)."""
    with set_curdoc(doc):
        pn.state.execute(fn, schedule=True)


def progress_html(what: str, done: int, total: int, unit: str, remaining: float | None) -> str:
    """'what: done / total unit · about N s left', in the page's words."""
    left = "" if remaining is None else f" · about {_duration(remaining)} left"
    return (f'<div class="pe-progress-text" data-done="{done}" data-total="{total}" style="font-size:15px">'
            f"<b>{plain(what)}</b>: {done:,} / {total:,} {plain(unit)}{left}</div>")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class ProgressNote(pn.viewable.Viewer):
    """The progress line and its Cancel button for one kind of computation."""

    def __init__(self, unit: str, css: str, **params: Any):
        super().__init__(**params)
        self.unit = unit
        self.tracker: Progress | None = None
        self._what = ""
        self._doc: Any = None
        self._last = 0.0
        self._lock = threading.Lock()
        self.text = pn.pane.HTML("", sizing_mode="stretch_width")
        self.button = pn.widgets.Button(label="Cancel", color="warning", width=110, css_classes=["pe-cancel"])
        self.button.on_click(lambda _e: self.cancel())
        self._layout = pn.Row(self.text, self.button, visible=False, sizing_mode="stretch_width",
                              css_classes=[css])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def follow(self, tracker: Progress, what: str) -> Progress:
        """Show the reports of ``tracker`` (a computation in another thread); call on the session."""
        with self._lock:
            if self.tracker is not None and self.tracker is not tracker:
                self.tracker.on_change = None  # the old one may still report once: not on this line
            self.tracker = tracker
            self._what, self._doc, self._last = what, pn.state.curdoc, 0.0
        tracker.on_change = self._reported
        return tracker

    def start(self, what: str) -> Progress:
        """A new tracker for a computation about to start in another thread, followed here."""
        return self.follow(Progress(), what)

    def stop(self) -> None:
        with self._lock:
            if self.tracker is not None:
                self.tracker.on_change = None
            self.tracker = None
        self._layout.visible = False

    def cancel(self) -> None:
        with self._lock:
            tracker = self.tracker
        if tracker is not None:
            tracker.cancel()
            self.text.object = f'<div class="pe-progress-text" style="font-size:15px">Stopping {plain(self._what)}…</div>'

    def _reported(self, tracker: Progress) -> None:
        now = time.monotonic()
        with self._lock:
            if tracker is not self.tracker or (now - self._last < EVERY_S and tracker.done < tracker.total):
                return
            self._last = now
            doc = self._doc
        on_session(doc, lambda: self._draw(tracker))

    def _draw(self, tracker: Progress) -> None:
        with self._lock:
            if tracker is not self.tracker or tracker.cancelled:
                return
        self.text.object = progress_html(self._what, tracker.done, tracker.total, self.unit, tracker.remaining_s())
        self._layout.visible = True
