"""HoloViews for the charts of the analysis sections and the summary tab.

HoloViews is not thread-safe: plots built at the same moment in two threads corrupt each
other (``'str' object has no attribute 'update'``, ``Stream.registry`` changing size during
iteration). These charts are built rarely (a button press, a results reload, another choice
in the summary), so they take turns behind ``CHARTS_LOCK``. The per-image panes do not use
HoloViews (see :mod:`dashboard.image_plots`) and never wait for this lock.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

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
