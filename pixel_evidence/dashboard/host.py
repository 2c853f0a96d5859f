"""One ``ExplanationEngine`` per server process, built in the background and shared.

Every browser session asks :func:`get_host` for the host of its configuration; the first
call starts building the engine in a thread (reading the manifest and checkpoint metadata,
generating the built-in data on the very first run). Sessions render their page at once and
fill it in when the engine is ready. The host also owns the background fill of the engine's
cache (:class:`~pixel_evidence.dashboard.background_fill.BackgroundFill`, ``host.background``),
and this module the thread pools and caches that all sessions share (:data:`SHARED`).

The engine module (and with it torch) is imported lazily, inside the builder thread or, under
``panel serve --warm``, in the start-up run before the server listens; importing the dashboard
never loads a deep-learning stack.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from pixel_evidence.dashboard.background_fill import IDLE_AFTER_S, BackgroundFill
from pixel_evidence.dashboard.catalogue import Catalogue
from pixel_evidence.dashboard.config import AppConfig
from pixel_evidence.dashboard.setup_problem import SetupProblem, describe_setup_error
from pixel_evidence.dashboard.shared import ProcessShared
from pixel_evidence.dashboard.shutdown import on_exit
from pixel_evidence.data.sample import DataError
from pixel_evidence.engine.contract import Engine

log = logging.getLogger("pixel_evidence.dashboard")

# One per process, whatever the configuration: the threads that compute answers off the server's
# threads, and the caches of answers that are the same for every session.
SHARED = ProcessShared()
on_exit(SHARED.close)


def _import_engine() -> float:
    """Import the engine's modules (torch among them) and return the seconds it took."""
    started = time.perf_counter()
    # OpenMP threads that wait for work sleep instead of spinning. The server shares its
    # cores with browsers, other sessions and other jobs; a spinning waiter takes the core
    # its partner needs. Measured on 2 cores with one busy: three maps 0.84 s passive against
    # 1.8 s spinning (0.62 against 0.55 s on idle cores). Read once, when torch loads below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import pixel_evidence.engine.explain  # noqa: F401 - lazy: this is where torch gets imported

    # The imports leave half a million objects (torch, Bokeh, Panel) that live as long as the
    # server. Frozen, they are left out of every later full garbage collection, which otherwise
    # walks them all: 0.2 s or more holding the GIL, stalling every session, each time Panel
    # collects after a closed page or the allocator's counts call for one.
    gc.freeze()
    return time.perf_counter() - started


def engine_catalogue(engine: Engine) -> Catalogue:
    """What ``engine`` can show, opening (for a link that names no image) on the image that
    the evaluation results beside its models pick."""
    from pixel_evidence.results import results_dir
    from pixel_evidence.results.noise_study import noise_dir, read_study

    models = engine.pool.models_dir
    return Catalogue.from_engine(engine, tko=SHARED.evaluation_results(results_dir(models)).tko,
                                 noise=read_study(noise_dir(models)))


def _open_first_view(engine: Engine) -> None:
    """Load the opening view's network and compute its maps while the first visitor's page
    is still being built, so that page finds them ready instead of starting the work.

    The opening view is a new session's default (seed, split, image, methods); a visitor
    whose link names another image waits for this one computation at most. It is the
    first view itself, not background work, so it runs before any view is drawn."""
    from pixel_evidence.dashboard.state import DashboardState

    try:
        state = DashboardState(engine_catalogue(engine))
        state.open_link({})  # what a link without a query opens
        if state.image_id:
            engine.explain(state.seed, state.image_id, split=state.split, methods=state.methods)
    except DataError as exc:  # a file of the opening image: one line, the page names it too
        log.warning("could not prepare the opening view: %s", exc)
    except Exception:  # noqa: BLE001 - the page asks again and reports a real error itself
        log.warning("could not prepare the opening view", exc_info=True)


class EngineHost:
    """Holds the shared engine (or the reason it could not be built) and its background fill.

    ``warm``: fill the cache in the background (default: the configuration's); ``idle_after``
    and ``clock``: the fill's (:class:`~pixel_evidence.dashboard.background_fill.BackgroundFill`);
    ``first_view``: compute the opening view as soon as the engine exists (default: for the
    configured engine when ``warm``).
    """

    def __init__(self, config: AppConfig, factory: Callable[[], Engine] | None = None, *, warm: bool | None = None,
                 idle_after: float = IDLE_AFTER_S, clock: Callable[[], float] = time.monotonic,
                 first_view: bool | None = None):
        self.config = config
        self._factory = factory or self._default_factory
        warm = config.warm if warm is None else warm
        self._first_view = (factory is None and warm) if first_view is None else first_view
        self.first_view_ready = threading.Event()  # set once the opening view is computed (or cannot be)
        self._future: Future[Engine | None] = Future()
        self._started = False
        self._lock = threading.Lock()
        self.problem: SetupProblem | None = None
        self.background = BackgroundFill(self._built_engine, enabled=warm, idle_after=idle_after, clock=clock)

    @classmethod
    def for_engine(cls, engine: Engine, *, warm: bool = False, **kwargs: Any) -> "EngineHost":
        """A host around an engine that already exists (tests, notebooks)."""
        host = cls(AppConfig(warm=warm), lambda: engine, warm=warm, **kwargs)
        host.start()
        host._future.result()
        return host

    def _default_factory(self) -> Engine:
        _import_engine()
        from pixel_evidence.engine.explain import load_engine

        engine = load_engine(self.config.data, self.config.models, **self.config.engine_kwargs())
        gc.freeze()  # the engine's own long-lived objects too (see _import_engine)
        return engine

    def start(self, *, import_here: bool = False) -> "EngineHost":
        """Start building the engine in a thread of its own (once; later calls return at once).

        ``import_here``: first import the engine's modules, torch among them, in the calling
        thread. ``panel serve --warm`` runs the app once before the server listens; importing
        there (2.5 s) keeps the import from competing with the first pages for the GIL, so a
        page asked for once the server listens waits only for the model and its maps."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        if import_here and self._factory == self._default_factory:
            try:
                took = _import_engine()
            except Exception:  # noqa: BLE001 - the build below meets it again and makes it a page
                log.debug("importing the engine failed", exc_info=True)
            else:
                log.info("engine modules imported in %.2f s, before the server listens", took)
        threading.Thread(target=self._build, name="engine-build", daemon=True).start()
        return self

    def _build(self) -> None:
        started = time.perf_counter()
        try:
            engine = self._factory()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a page, never a traceback
            self.problem = describe_setup_error(exc, self.config)
            if self.problem.commands:  # a set-up problem the page explains: one line for the operator
                log.warning("engine construction failed: %s: %s", type(exc).__name__, exc)
                log.debug("engine construction failed", exc_info=exc)
            else:  # not a known set-up problem: its page points at the log for the full error
                log.exception("engine construction failed")
            self._future.set_result(None)
            self.first_view_ready.set()
            return
        self._future.set_result(engine)
        log.info("engine ready in %.2f s", time.perf_counter() - started)
        if self._first_view:
            _open_first_view(engine)
            log.info("opening view computed %.2f s after the engine build started", time.perf_counter() - started)
        self.first_view_ready.set()

    @property
    def ready(self) -> bool:
        return self._future.done()

    def _built_engine(self) -> Engine | None:
        """The engine if it is built, else None (never waits)."""
        return self._future.result() if self._future.done() else None

    def stop(self) -> None:
        """The server is ending: the background fill stops after the image in hand, and the
        engine's queued work is dropped. Returns at once."""
        self.background.stop()
        engine = self._built_engine()
        if engine is not None:
            engine.close()

    def engine(self, timeout: float | None = None) -> Engine | None:
        """The engine, waiting up to ``timeout`` seconds; ``None`` if it failed (see ``problem``)."""
        return self._future.result(timeout)


_HOSTS: dict[tuple, EngineHost] = {}
_HOSTS_LOCK = threading.Lock()


def get_host(config: AppConfig, *, import_here: bool = False) -> EngineHost:
    """The process-wide host for ``config``, created and started on first use (``import_here``:
    see :meth:`EngineHost.start`)."""
    key = config.key()
    with _HOSTS_LOCK:
        host = _HOSTS.get(key)
        if host is None:
            host = _HOSTS[key] = EngineHost(config)
            on_exit(host.stop)
    return host.start(import_here=import_here)
