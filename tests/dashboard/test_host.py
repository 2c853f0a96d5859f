"""The engine host's background fill, and what a closed session lets go of, on the tiny models.

The fill must never go first (it starts once a view is drawn) and must not run for nobody
(it pauses when no request came for ``idle_after`` seconds, until the next one). Each test
waits for the states the host publishes (``host.background.state``), capped at ``WAIT_S``; time itself is
a clock the test moves.
"""

from __future__ import annotations

import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from pixel_evidence.dashboard.background_fill import FILLING, IDLE, OFF, PAUSED, STOPPED, WAITING_FOR_VIEW
from pixel_evidence.dashboard.host import EngineHost
from tests.waiting import wait_collected

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
WAIT_S = 300  # a cap, not an expectation: CI machines run at a load of 10 or more
METHODS = ("gradcam",)


class Clock:
    """Time as the host reads it, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fresh(engine):
    """The module's engine with nothing cached in memory: each test sees its own model calls."""
    engine.clear_cache()
    return engine


@pytest.fixture
def hosts():
    """Makes warm hosts on an engine; stops their fills at the end."""
    made = []

    def make(engine, **kwargs):
        made.append(EngineHost.for_engine(engine, warm=True, **kwargs))
        return made[-1]

    yield make
    for host in made:
        host.background.stop()


def _cached(engine, seed: int, image_id: str) -> bool:
    """Whether ``image_id``'s explanation comes from the cache (asking makes it cached)."""
    calls = engine.compute_calls
    engine.explain(seed, image_id, split="test", methods=METHODS)
    return engine.compute_calls == calls


def test_the_fill_waits_for_the_first_view(fresh, hosts):
    host = hosts(fresh)
    seed = fresh.pool.seeds[0]
    calls = fresh.compute_calls
    assert host.background.request(seed, "test", METHODS)
    assert not host.background.request(seed, "test", METHODS)  # once per combination
    assert host.background.state.phase == WAITING_FOR_VIEW and host.background.state.pending == 1
    assert fresh.compute_calls == calls  # nothing computed before a view is drawn

    host.background.view_drawn()
    host.background.wait_for(lambda fill: fill.phase == IDLE, WAIT_S)
    assert all(_cached(fresh, seed, i) for i in fresh.catalogue.image_ids("test"))
    host.background.stop()
    assert host.background.wait_for(lambda fill: fill.phase == STOPPED, WAIT_S).pending == 0


def test_the_fill_pauses_when_nobody_asks_and_resumes_on_the_next_request(fresh, hosts):
    clock = Clock()
    host = hosts(fresh, idle_after=600, clock=clock)
    seed = fresh.pool.seeds[0]
    ids = fresh.catalogue.image_ids("test")
    host.background.request(seed, "test", METHODS)
    with fresh.exclusive():  # the fill's first image waits for the model until the clock has moved
        host.background.view_drawn()
        host.background.wait_for(lambda fill: fill.phase == FILLING, WAIT_S)
        clock.now += 601
    paused = host.background.wait_for(lambda fill: fill.phase == PAUSED, WAIT_S)
    assert paused.pending == 1  # the rest of the split waits for the next request
    assert _cached(fresh, seed, ids[0])  # the image in hand was finished
    assert not _cached(fresh, seed, ids[-1])

    host.background.touch()
    host.background.wait_for(lambda fill: fill.phase == IDLE, WAIT_S)
    assert all(_cached(fresh, seed, i) for i in ids)


def test_a_quiet_server_does_not_start_the_fill(fresh, hosts):
    clock = Clock()
    host = hosts(fresh, idle_after=600, clock=clock)
    host.background.request(fresh.pool.seeds[0], "test", METHODS)
    clock.now += 601
    host.background.view_drawn()
    assert host.background.wait_for(lambda fill: fill.phase == PAUSED, WAIT_S).pending == 1
    assert not _cached(fresh, fresh.pool.seeds[0], fresh.catalogue.image_ids("test")[0])


def test_the_queue_keeps_the_newest_wishes(fresh, hosts):
    from pixel_evidence.dashboard.background_fill import MAX_PENDING

    host = hosts(fresh)
    seed = fresh.pool.seeds[0]
    targets = ("predicted", "true")
    wishes = [(split, target) for split in ("train", "test") for target in targets]
    assert len(wishes) > MAX_PENDING
    for split, target in wishes:
        assert host.background.request(seed, split, METHODS, target)
    assert host.background.state.pending == MAX_PENDING
    assert host.background.request(seed, "train", METHODS, "predicted")  # the oldest was dropped: it may be asked again


def test_no_fill_when_the_configuration_says_so(fresh):
    host = EngineHost.for_engine(fresh, warm=False)
    assert not host.background.request(fresh.pool.seeds[0], "test", METHODS)
    assert host.background.state.phase == OFF


def test_the_first_view_goes_before_the_fill(fresh, hosts, monkeypatch):
    """Through the dashboard: the page's image is computed at interactive priority before the
    fill computes anything, and the fill then covers the page's split."""
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.engine.priority_lock import INTERACTIVE, current_priority

    calls = []
    explain = fresh.explain

    def recorded(seed, image_id, **kwargs):
        calls.append(("start", image_id, current_priority()))
        try:
            return explain(seed, image_id, **kwargs)
        finally:
            calls.append(("end", image_id, current_priority()))

    monkeypatch.setattr(fresh, "explain", recorded)
    host = hosts(fresh)
    dash = create_app(engine=fresh, host=host).dashboard
    host.background.wait_for(lambda fill: fill.phase == IDLE, WAIT_S)
    first = dash.state.image_id
    assert calls[:2] == [("start", first, INTERACTIVE), ("end", first, INTERACTIVE)]
    assert all(priority > INTERACTIVE for _, _, priority in calls[2:])
    assert {i for _, i, _ in calls[2:]} == set(fresh.catalogue.image_ids("test"))


def test_the_opening_view_is_computed_as_the_engine_starts(fresh):
    """A served host computes a new session's default view right after the engine is built,
    before any page asks: the first page then finds its maps ready (no model call)."""
    from pixel_evidence.dashboard.app import create_app
    from pixel_evidence.dashboard.config import AppConfig

    # no background fill (it would start once the page is drawn and count its own calls)
    host = EngineHost(AppConfig(warm=False), lambda: fresh, first_view=True).start()
    assert host.first_view_ready.wait(WAIT_S)
    assert host.background.state.phase == OFF  # the opening view is not the background fill
    calls = fresh.compute_calls
    dash = create_app(engine=fresh, host=host).dashboard
    ex = dash.store.explanation
    assert ex is not None and ex.image_id == dash.state.image_id and list(ex.methods) == list(dash.state.methods)
    assert fresh.compute_calls == calls
    host.background.stop()


def test_a_host_of_a_given_engine_computes_nothing_by_itself(fresh):
    calls = fresh.compute_calls
    host = EngineHost.for_engine(fresh, warm=True)
    assert host.first_view_ready.wait(WAIT_S) and fresh.compute_calls == calls
    host.background.stop()


def test_a_closed_store_lets_go_of_the_session(fresh):
    """After ``close`` the store holds no answer and asks for nothing more, it redraws nothing
    (in a server its page's models may be gone already), and once the work in flight has
    settled nothing outside the session (thread pools, shared caches, the host) keeps its
    objects alive. (The browser tests close a served page, Bokeh models and all.)"""
    from pixel_evidence.dashboard.app import Dashboard

    host = EngineHost.for_engine(fresh)
    dash = Dashboard(fresh, host=host)  # without Bokeh models: Panel keeps those until a server session ends
    dash.store.refresh()
    assert dash.store.explanation is not None
    objects = [weakref.ref(o) for o in (dash, dash.store, dash.image_view, dash.analysis, dash.state)]
    told = []
    dash.store.param.watch(told.append, ["explanation", "pictures"])
    in_flight = dash.analysis.agreement.answer.future  # the agreement of the first image, maybe still running

    dash.store.close()
    assert dash.store.explanation is None and dash.store.pictures is None and dash.store.closed
    assert told == []
    calls = fresh.compute_calls
    dash.state.step(1)
    assert fresh.compute_calls == calls and dash.store.explanation is None
    in_flight.result(timeout=WAIT_S)  # drawn before the close, or dropped: never left hanging
    del dash, in_flight
    assert wait_collected(objects, WAIT_S) == []


ARENAS_PROBE = r"""
import ctypes, sys, tempfile, threading
if sys.argv[1] == "capped":
    import pixel_evidence.dashboard.session_memory  # noqa: F401 - caps the arenas on import
libc = ctypes.CDLL("libc.so.6")
blocks, start = [], threading.Barrier(8)
def allocate():
    start.wait()  # all at once, so that glibc hands out arenas to contending threads
    blocks.extend(ctypes.create_string_buffer(64 * 1024) for _ in range(200))
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    fh = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fh))
    libc.fclose(ctypes.c_void_p(fh))
    print(open(out.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_the_server_caps_glibcs_arenas():
    """Threads that allocate at once get arenas of their own (freed tensors stay resident per
    thread); importing the dashboard's session memory module caps them at SERVER_ARENAS for the whole server."""
    from pixel_evidence.dashboard.session_memory import SERVER_ARENAS

    def heaps(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", ARENAS_PROBE, mode], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], check=True)
        return int(run.stdout.strip())

    assert heaps("capped") <= SERVER_ARENAS < heaps("default")


IMPORT_PROBE = r"""
import gc, os, sys
from pixel_evidence.dashboard.host import _import_engine
assert "torch" not in sys.modules
_import_engine()
print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules, gc.get_freeze_count())
"""


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_servers_import_sets_sleeping_openmp_waiters_and_freezes_what_it_loaded(given, expected):
    """Before torch loads, the server asks OpenMP's waiting threads to sleep (unless the operator
    chose otherwise); after, the half million objects of the imports are frozen out of the
    garbage collector's full passes."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    run = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True, env=env,
                         cwd=Path(__file__).resolve().parents[2], timeout=WAIT_S)
    policy, torch_loaded, frozen = run.stdout.split()
    assert policy == expected and torch_loaded == "True"
    assert int(frozen) > 100_000  # torch alone brings several hundred thousand


def test_panel_serve_warm_imports_the_engine_before_it_listens(tiny_run, tmp_path):
    """``panel serve app.py --warm`` imports torch in its start-up run, before it listens: a page
    asked for once the server answers then never shares the GIL with that import."""
    import socket
    import time

    root, models, *_ = tiny_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "app.py", "--warm", "--port", str(port),
                                 "--address", "127.0.0.1", "--args", "--data", str(root), "--models", str(models)],
                                cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT_S
        while "Bokeh app running at" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the server never said it listens"
            time.sleep(0.2)
        text = log.read_text(errors="replace")
        assert "engine modules imported in" in text, text
        assert text.index("engine modules imported in") < text.index("Bokeh app running at")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
