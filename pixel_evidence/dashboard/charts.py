"""HoloViews for the charts of the analysis sections and the summary tab.

HoloViews is not thread-safe: plots built at the same moment in two threads corrupt each
other (``'str' object has no attribute 'update'``, ``Stream.registry`` changing size during
iteration). These charts are built rarely (a button press, a results reload, another choice
in the summary), so they take turns behind ``CHARTS_LOCK``: our code holds it while it makes
and assigns a chart, and :class:`ChartPane` while Panel turns one into a Bokeh plot (when a
tab is first shown) or tears the plot down (when a session ends), which Panel does on its
own threads. The per-image panes do not use HoloViews (see :mod:`pixel_evidence.dashboard.image_plots`)
and never wait for this lock.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

import panel as pn

CHARTS_LOCK = threading.RLock()


def hv() -> Any:
    import holoviews
    import holoviews.plotting.bokeh  # noqa: F401 - registers the bokeh backend and its options

    return holoviews


def drawing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` holding ``CHARTS_LOCK``: for code that builds HoloViews charts."""
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with CHARTS_LOCK:
            return method(*args, **kwargs)
    return locked


class ChartPane(pn.pane.HoloViews):
    """A HoloViews pane that builds and tears down its Bokeh plots behind ``CHARTS_LOCK``.

    The lock is only ever taken inside the document's lock, never the other way round (a
    chart assigned from a worker thread reaches its page through a next-tick callback), so
    the two cannot deadlock."""

    def _get_model(self, *args: Any, **kwargs: Any) -> Any:
        with CHARTS_LOCK:
            return super()._get_model(*args, **kwargs)

    def _cleanup(self, *args: Any, **kwargs: Any) -> None:
        with CHARTS_LOCK:
            super()._cleanup(*args, **kwargs)
