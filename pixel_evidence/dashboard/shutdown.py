"""Background work stops when the server process ends.

Python joins every executor's threads before the process exits, so the work they hold then
(the rest of a split the background fill is computing, a randomization check that takes
minutes) kept a server that was told to stop (SIGTERM, Ctrl-C) computing for minutes. Whoever
owns such work registers how to stop it with :func:`on_exit`; the stops run as the main thread
ends, before those threads are joined (``atexit`` functions would run after).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from pixel_evidence.progress import stop_all

log = logging.getLogger("pixel_evidence.dashboard")

_STOPS: list[Callable[[], None]] = []


def on_exit(stop: Callable[[], None]) -> None:
    """Call ``stop`` when the process ends; it must return at once, not wait for the work."""
    _STOPS.append(stop)


def stop_background_work() -> None:
    """Every watched computation stops at its next report; then each registered stop, newest first."""
    stop_all()
    for stop in reversed(_STOPS):
        try:
            stop()
        except Exception:  # noqa: BLE001 - the others must still stop
            log.exception("stopping background work failed")


# the hook Python calls as the main thread ends, before it joins the executors' threads
threading._register_atexit(stop_background_work)  # noqa: SLF001
