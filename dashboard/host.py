"""One ``ExplanationEngine`` per server process, built in the background and shared.

Every browser session asks :func:`get_host` for the host of its configuration; the first
call starts building the engine in a thread (reading the manifest and checkpoint metadata,
generating the built-in data on the very first run), then warms it up: loads the first
seed's model and precomputes the default split. Sessions render their page at once and
fill it in when the engine is ready.

The engine module (and with it torch) is imported lazily inside the builder thread, so
importing the dashboard never loads a deep-learning stack.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import AppConfig

log = logging.getLogger("pixel_evidence.dashboard")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = PROJECT_ROOT / "pretrained_models"


@dataclass(frozen=True)
class SetupProblem:
    """What went wrong while building the engine, in words, with the commands that fix it."""

    title: str
    detail: str
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def _models_arg(config: AppConfig) -> str:
    return f" --models {config.models}" if config.models else ""


def _data_arg(config: AppConfig) -> str:
    return f" --data {config.data}" if config.data else ""


def describe_setup_error(exc: BaseException, config: AppConfig | None = None) -> SetupProblem:
    """Turn an engine construction error into a page: what is missing and how to make it."""
    config = config or AppConfig()
    name = type(exc).__name__
    message = str(exc)
    models = config.models or DEFAULT_MODELS
    train = f"pixel-evidence train{_data_arg(config)}{_models_arg(config)}"
    quick = f"pixel-evidence train{_data_arg(config)}{_models_arg(config)} --seeds 42 --epochs 2 --image-size 96 --freeze-blocks 6"
    serve = f"panel serve app.py{' --args' + _data_arg(config) + _models_arg(config) if (config.data or config.models) else ''}"
    if name == "CheckpointError" and "no trained models" in message:
        return SetupProblem(
            "No trained models yet",
            f"The folder {models} holds no finished checkpoints (seed_<n>.pt with its seed_<n>.json).",
            (train, serve),
            (f"For a quick try, train one small model instead: {quick}",))
    if name == "DataError" and "manifest not found" in message:
        return SetupProblem(
            "No models (and no split manifest) in the models folder",
            f"{message}. Training writes the manifest and the checkpoints together.",
            (train, serve),
            (f"For a quick try: {quick}",))
    if name == "DataError" and "missing" in message:
        return SetupProblem(
            "Images listed by the models' manifest are missing",
            message,
            ("pixel-evidence data download hazelnut --data-dir DATA_DIR",
             "panel serve app.py --args --data DATA_DIR/hazelnut" + _models_arg(config)),
            ("Point --data at the category folder the models were trained on. Without --data the "
             "dashboard uses the built-in synthetic set (regenerate it with `pixel-evidence data generate`).",))
    if name == "DataError":
        return SetupProblem("The data cannot be used", message,
                            ("pixel-evidence data download hazelnut --data-dir DATA_DIR", "pixel-evidence data generate"))
    if name == "CheckpointError":
        return SetupProblem("The models cannot be used with this data", message,
                            (f"{train} --force", serve))
    if name == "ConfigError":
        return SetupProblem("The dashboard's arguments are not usable", message,
                            ("panel serve app.py --args --data DIR --models DIR",
                             "panel serve app.py --args --config dashboard.toml"))
    if isinstance(exc, FileNotFoundError):
        return SetupProblem("A file or folder is missing", message, (train,))
    return SetupProblem("The explanation engine could not start", f"{name}: {message}",
                        (), ("The full error is in the server log.",))


class EngineHost:
    """Holds the shared engine (or the reason it could not be built) and its warm-up."""

    def __init__(self, config: AppConfig, factory: Callable[[], Any] | None = None, *, warm: bool | None = None):
        self.config = config
        self._factory = factory or self._default_factory
        self._warm = config.warm if warm is None else warm
        self._future: Future = Future()
        self._started = False
        self._lock = threading.Lock()
        self._precomputed: set[tuple] = set()
        self._queue: "queue.Queue[tuple]" = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.progress: dict[tuple[int, str], tuple[int, int]] = {}
        self.problem: SetupProblem | None = None

    @classmethod
    def for_engine(cls, engine: Any, *, warm: bool = False) -> "EngineHost":
        """A host around an engine that already exists (tests, notebooks)."""
        host = cls(AppConfig(warm=warm), lambda: engine, warm=warm)
        host.start()
        host._future.result()
        return host

    def _default_factory(self) -> Any:
        from engine.explain import load_engine  # lazy: this is where torch gets imported

        return load_engine(self.config.data, self.config.models, **self.config.engine_kwargs())

    # --------------------------------------------------------------- lifecycle

    def start(self) -> "EngineHost":
        with self._lock:
            if self._started:
                return self
            self._started = True
        threading.Thread(target=self._build, name="engine-build", daemon=True).start()
        return self

    def _build(self) -> None:
        try:
            engine = self._factory()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a page, never a traceback
            log.exception("engine construction failed")
            self.problem = describe_setup_error(exc, self.config)
            self._future.set_result(None)
            return
        self._future.set_result(engine)
        if self._warm:
            self.warm_up(engine)

    def warm_up(self, engine: Any) -> None:
        """Precompute the first seed's test split (its first image loads the model)."""
        try:
            self.precompute(engine.seeds[0], "test")
        except Exception:  # noqa: BLE001 - warm-up is an optimisation; the page reports real errors
            log.exception("warm-up failed")

    @property
    def ready(self) -> bool:
        return self._future.done()

    def engine(self, timeout: float | None = None) -> Any | None:
        """The engine, waiting up to ``timeout`` seconds; ``None`` if it failed (see ``problem``)."""
        return self._future.result(timeout)

    def precompute(self, seed: int, split: str, methods: Iterable[str] | None = None,
                   target: str = "predicted") -> bool:
        """Fill the engine's cache for a whole split in the background, once per combination.

        Returns True when the job was queued now. Jobs run one after another through
        ``engine.precompute``: one image at a time at background priority, so a person's
        click waits for at most one forward, and a stopping server is never held up by a
        half-done split.
        """
        if not self._warm:
            return False
        engine = self._future.result() if self._future.done() else None
        if engine is None:
            return False
        if methods is None:
            from engine.explainers import DEFAULT_METHODS  # the engine is built: already imported

            methods = DEFAULT_METHODS
        methods = tuple(methods)
        key = (int(seed), split, tuple(sorted(methods)), target)
        with self._lock:
            if key in self._precomputed:
                return False
            self._precomputed.add(key)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, args=(engine,), name="precompute", daemon=True)
                self._worker.start()
        self._queue.put((int(seed), split, methods, target))
        return True

    def _work(self, engine: Any) -> None:
        while not self._stop.is_set():
            seed, split, methods, target = self._queue.get()
            try:
                def progress(done: int, total: int, key=(seed, split)) -> None:
                    self.progress[key] = (done, total)

                n = engine.precompute(seed, split, methods, target, progress=progress, stop=self._stop).result()
                log.info("precomputed seed %s %s split (%d images)", seed, split, n)
            except Exception:  # noqa: BLE001 - background warm-up only
                log.exception("background precompute of seed %s %s stopped", seed, split)

    def stop(self) -> None:
        """Stop background precomputing after the current image."""
        self._stop.set()


_HOSTS: dict[tuple, EngineHost] = {}
_HOSTS_LOCK = threading.Lock()


def get_host(config: AppConfig) -> EngineHost:
    """The process-wide host for ``config``, created and started on first use."""
    key = config.key()
    with _HOSTS_LOCK:
        host = _HOSTS.get(key)
        if host is None:
            host = _HOSTS[key] = EngineHost(config)
    return host.start()
