"""Dashboard part of the benchmark (``python -m benchmarks``): server-side latency, first view, memory, soak.

1. Widget change -> updated view, in process: the dashboard's ``Dashboard`` viewer is built
   on the benchmark's engine and rendered to Bokeh models (as a served page would be);
   pressing "Next" (``state.step(1)``) makes the explanation store ask the engine; without a
   server session its coroutine runs to completion at once, so the step returns with the
   view redrawn. Cold = the engine's cache cleared first; warm = images already cached.
2. Ten sessions at once, in process: ten ``Dashboard`` viewers, each with its own Bokeh
   document, move to another image in ten threads at the same moment (cold: nothing cached,
   the engine serialises the model calls; warm: every image cached). Per session: the
   latency of the step, the time its drawing took, and the time between its answer being
   ready and its drawing starting, which is what a session would spend waiting for another
   session's drawing behind a shared lock.
3. A fresh ``panel serve app.py`` as a subprocess on a free loopback port, its data and
   models evicted from the page cache first. Time to the first TKO: headless Chromium
   (Playwright) requests the page as soon as the server answers; measured until the TKO
   numbers are in the DOM. Then memory: 1, and then 10 concurrent pages; the server's RSS is
   sampled from ``/proc`` until every page shows its method rows (peak), and read again once
   the pages are closed and the server has released their sessions (its log says so).
4. Soak, on another fresh server: 10 pages, one seed and class each, press "Next" 20 times
   while the server fills its cache in the background. Every page must end on its own image
   (title, selector, counter and URL agree), the server's output must hold no traceback, and
   its RSS must stay under 2.5 GB.

Every step is bounded in time and uses loopback only; servers and browsers are stopped at
the end.

A part that fails is reported in the section's notes and its status, never silently skipped.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .report import SERVER_RSS_LIMIT_MB

log = logging.getLogger("pixel_evidence.bench")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
RENDERED = ".pe-method-row"  # one row per method: present once a page shows its maps


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if xs else math.nan


# ------------------------------------------------------------------ in-process widget latency

def _session(engine):
    """A dashboard as a served session has it: its own document, its first image shown."""
    import panel as pn
    from bokeh.document import Document

    from pixel_evidence.dashboard.app import Dashboard

    dash = Dashboard(engine)
    pn.panel(dash).get_root(Document())  # Bokeh models exist, as for a served session
    dash.store.refresh()
    return dash


def _defect_pool(engine) -> list[str]:
    return [i for i in engine.catalogue.image_ids("test") if engine.catalogue.sample(i).has_mask]


def widget_latency(engine, seed: int, clock, warm_changes: int = 40) -> dict[str, Any]:
    dash = _session(engine)
    state, store = dash.state, dash.store
    state.seed = seed
    state.go_to(_defect_pool(engine)[0])
    ids = state.image_ids

    def shown() -> str | None:
        ex = store.explanation
        return ex.image_id if ex is not None else None

    # cold: the next image, nothing cached
    colds = []
    for _ in range(min(3, max(1, len(ids) - 1))):
        engine.clear_cache()
        t, _ = clock.time(lambda: state.step(1))
        if shown() != state.image_id:
            raise RuntimeError("the view did not show the new image after the widget change")
        colds.append(t)
    # warm: back and forth between two images that are cached (one unmeasured round first)
    state.step(-1)
    state.step(1)
    warm = []
    for i in range(warm_changes):
        t, _ = clock.time(lambda: state.step(-1 if i % 2 == 0 else 1))
        if shown() != state.image_id:
            raise RuntimeError("the view did not show the new image after the widget change")
        warm.append(t * 1000)
    return {"what": "'Next image' in the sidebar (state.step) -> view redrawn", "cold_s": statistics.median(colds),
            "cold_samples_s": colds, "warm_changes": len(warm), "warm_p50_ms": _pct(warm, 50),
            "warm_p95_ms": _pct(warm, 95), "scope": "in-process Dashboard viewer with Bokeh models"}


# ------------------------------------------------------------------ ten sessions at once

class _DrawLog:
    """Per session: when its answer was ready, when its drawing started and ended."""

    def __init__(self, dash):
        self.ready = self.start = self.end = math.nan
        store, view = dash.store, dash.image_view
        compute, draw = store._compute, view._draw

        def timed_compute(*args):
            out = compute(*args)
            self.ready = time.perf_counter()
            return out

        def timed_draw(ex, pics):
            self.start = time.perf_counter()
            try:
                return draw(ex, pics)
            finally:
                self.end = time.perf_counter()

        store._compute, view._draw = timed_compute, timed_draw


def _at_once(sessions, targets) -> list[float]:
    """Every session goes to its target image in its own thread, all released together;
    returns each session's latency (seconds)."""
    barrier = threading.Barrier(len(sessions))
    latency = [math.nan] * len(sessions)

    def press(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        sessions[i].state.go_to(targets[i])
        latency[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=press, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for dash, image_id in zip(sessions, targets):
        if dash.store.explanation is None or dash.store.explanation.image_id != image_id:
            raise RuntimeError("a session did not show its image after the concurrent change")
    return latency


def _round(sessions, logs, targets) -> dict[str, Any]:
    latency = _at_once(sessions, targets)
    draws = [(log.end - log.start) * 1000 for log in logs]
    waits = [max(0.0, log.start - log.ready) * 1000 for log in logs]
    return {"latency_p50_ms": _pct([x * 1000 for x in latency], 50), "latency_max_ms": max(latency) * 1000,
            "draw_p50_ms": _pct(draws, 50), "draw_max_ms": max(draws),
            "wait_for_drawing_max_ms": max(waits), "wait_for_drawing_p50_ms": _pct(waits, 50)}


def concurrent_sessions(engine, seed: int, n: int = 10) -> dict[str, Any]:
    """``n`` sessions each move to another image at the same moment (see the module docstring)."""
    pool = _defect_pool(engine)
    sessions = [_session(engine) for _ in range(n)]
    for dash in sessions:
        dash.state.seed = seed
    logs = [_DrawLog(dash) for dash in sessions]
    first = [pool[i % len(pool)] for i in range(n)]
    second = [pool[(i + n) % len(pool)] for i in range(n)]
    _at_once(sessions, first)  # both sets of images computed and cached, unmeasured
    _at_once(sessions, second)
    alone = _round(sessions[:1], logs[:1], first[:1])  # one session by itself: the reference
    _at_once(sessions[:1], second[:1])
    warm = _round(sessions, logs, first)  # every image cached: only drawing is left
    engine.clear_cache()
    cold = _round(sessions, logs, second)  # nothing cached: the model calls queue up in the engine
    return {"sessions": n, "alone": alone, "cold": cold, "warm": warm,
            "what": "each session moves to another image at the same moment, in its own thread; wait_for_drawing: "
                    "from its answer being ready to its drawing starting"}


# ------------------------------------------------------------------ a real server

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0.0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            v = _rss_mb(self.pid)
            if not math.isnan(v):
                self.peak = max(self.peak, v)
                self.samples += 1
            self._stop_event.wait(self.every)

    def take_peak(self) -> float:
        """Peak since the last call, then start a new window."""
        v, self.peak = self.peak, _rss_mb(self.pid)
        return v

    def stop(self) -> None:
        self._stop_event.set()


def evict_from_page_cache(*folders: Path) -> dict[str, float]:
    """Drop the files under ``folders`` (checkpoints, images) from the system's page cache, so
    that the next server reads them from disk as on a fresh start. Per file and without root;
    libraries (torch, Panel) stay cached, as they would for anyone who started Python lately."""
    files = size = 0
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if not path.is_file():
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            files += 1
            size += path.stat().st_size
    return {"evicted_files": files, "evicted_mb": size / 2**20}


# the host's line after closed sessions' memory was given back (pixel_evidence.dashboard.session_memory.SessionLedger)
_RELEASED = re.compile(r"released the memory of closed sessions \((\d+) closed, (\d+) open\)")


class ServedApp:
    """``panel serve app.py`` as a subprocess on a free loopback port, its output in a log file,
    its RSS sampled from ``/proc``; stopped on leaving the ``with`` block."""

    def __init__(self, model_info: dict, log_path: Path, *, warm: bool = True):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/app"
        self.log_path = log_path
        # a closed page's session ends 15 s (Bokeh's lifetime) to 16 s after, not up to 32 s
        # --warm as the README's command: the engine and the opening view start with the server
        self.cmd = [sys.executable, "-m", "panel", "serve", str(PROJECT_ROOT / "app.py"), *(["--warm"] * warm),
                    "--port", str(self.port), "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{self.port}",
                    "--check-unused-sessions", "1000",
                    "--args", "--data", model_info["data"], "--models", model_info["models_dir"]]

    def __enter__(self) -> "ServedApp":
        self._log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=PROJECT_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.sampler = RssSampler(self.proc.pid)
        self.sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sampler.stop()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    @property
    def command(self) -> str:
        return " ".join(self.cmd[1:4] + ["app.py", *self.cmd[5:6 if "--warm" in self.cmd else 5],
                                         "--args", "--data", "DATA", "--models", "MODELS"])

    def rss_mb(self, field: str = "VmRSS") -> float:
        return _rss_mb(self.proc.pid, field)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready, deadline: float, what: str) -> None:
        """Poll ``ready()`` (a state of the server or its log) until it holds or ``deadline``."""
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"panel serve exited with code {self.proc.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not reached in time")
            time.sleep(0.2)

    def wait_listening(self, deadline: float) -> None:
        """Until the server accepts connections. A TCP connect, not a page request: a request
        would open a session and start building the engine before the measured page does."""
        def listening() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        self.wait_until(listening, deadline, f"port {self.port} listening")

    def wait_released(self, closed: int, deadline: float) -> None:
        """Until the server has closed ``closed`` sessions in all, none is open, and their memory is given back."""
        def released() -> bool:
            counts = [(int(c), int(o)) for c, o in _RELEASED.findall(self.log())]
            return bool(counts) and counts[-1][0] >= closed and counts[-1][1] == 0

        self.wait_until(released, deadline, f"{closed} sessions closed and released")

    def tracebacks(self) -> list[str]:
        """The first line after every traceback in the server's output."""
        lines = self.log().splitlines()
        return [next((ln for ln in lines[i + 1:] if not ln.startswith(" ")), "") for i, ln in enumerate(lines)
                if ln.startswith("Traceback")]


@contextmanager
def _chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _pages(browser, n: int, deadline: float) -> tuple[list, list]:
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)]
    pages = [c.new_page() for c in contexts]
    for page in pages:
        page.set_default_timeout(max(1.0, deadline - time.monotonic()) * 1000)
    return contexts, pages


# ------------------------------------------------------------------ first view and memory

def first_view(app: ServedApp, browser, deadline: float) -> dict[str, Any]:
    """Time to the first TKO numbers of a server just started: the page is requested as soon as
    the server listens, then its frame (the loading state or the numbers) and the numbers are
    waited for."""
    app.wait_listening(deadline)
    server_up = time.monotonic()
    contexts, (page,) = _pages(browser, 1, deadline)
    try:
        page.goto(app.url, wait_until="commit")
        page.locator(".pe-starting, .pe-tko").first.wait_for(state="attached")
        frame = time.monotonic()
        loading_shown = page.locator(".pe-starting").count() > 0
        page.locator(".pe-tko").first.wait_for(state="attached")
        tko = time.monotonic()
    finally:
        contexts[0].close()
    return {"server_start_to_tko_s": tko - app.started, "page_request_to_tko_s": tko - server_up,
            "page_request_to_frame_s": frame - server_up, "server_start_s": server_up - app.started,
            "frame_showed_loading": loading_shown,
            "what": "a new panel serve process with its data and models evicted from the page cache; from the "
                    "first page request (made as soon as the server listens) until the TKO numbers are in the DOM"}


def session_memory(app: ServedApp, browser, sessions: tuple[int, ...], deadline: float) -> dict[str, Any]:
    """Peak RSS with ``n`` pages open at once, and RSS once they are closed and released."""
    out: dict[str, Any] = {"first_view_peak_mb": app.sampler.take_peak()}
    closed = 1  # the first view's page
    app.wait_released(closed, deadline)
    out["after_first_view_mb"] = app.rss_mb()
    app.sampler.take_peak()
    for n in sessions:
        contexts, pages = _pages(browser, n, deadline)
        t0 = time.monotonic()
        for p in pages:
            p.goto(app.url, wait_until="commit")
        rendered = 0
        for p in pages:
            try:
                p.locator(RENDERED).first.wait_for()
                rendered += 1
            except Exception:  # noqa: BLE001 - a page that never renders is reported
                log.warning("a page did not render before the time limit")
        out[f"sessions_{n}_seconds_to_render"] = time.monotonic() - t0
        out[f"sessions_{n}_rendered"] = rendered
        out[f"sessions_{n}_peak_mb"] = app.sampler.take_peak()
        for c in contexts:
            c.close()
        closed += n
        app.wait_released(closed, deadline)
        out[f"sessions_{n}_after_close_mb"] = app.rss_mb()
    out["vm_hwm_mb"] = app.rss_mb("VmHWM")
    return out


def server_sessions(model_info: dict, sessions: tuple[int, ...], timeout: float, log_path: Path) -> dict[str, Any]:
    """A fresh server: its first view, then its memory with 1 and 10 sessions."""
    deadline = time.monotonic() + timeout
    cold = evict_from_page_cache(Path(model_info["data"]), Path(model_info["models_dir"]))
    with _chromium() as browser, ServedApp(model_info, log_path) as app:
        first = {**first_view(app, browser, deadline), **cold}
        rss = {"url_path": "/app", "command": app.command, **session_memory(app, browser, sessions, deadline)}
    return {"first_view": first, "rss": rss}


# ------------------------------------------------------------------ soak

SOAK_SESSIONS = 10
SOAK_CLICKS = 20
SOAK_TIMEOUT_S = 1200.0

_URL_IMAGE_JS = "() => new URLSearchParams(window.location.search).get('image')"


def _page_state(page) -> dict[str, str]:
    """What one page shows: the title's image, the Image selector's, the counter and the URL's."""
    group = page.locator(".bk-input-group", has=page.locator("label", has_text="Image"))
    return {"title": page.locator(".pe-title-text").inner_text(), "selector": group.locator("select").first.input_value(),
            "counter": page.locator(".pe-count-text").first.inner_text().strip(),
            "url": page.evaluate(_URL_IMAGE_JS) or ""}


def soak(engine, model_info: dict, log_path: Path) -> dict[str, Any]:
    """``SOAK_SESSIONS`` browser sessions on a fresh server each click "Next" ``SOAK_CLICKS``
    times, one seed and class each, while the server fills its cache in the background. Every
    page must end on its own image with title, selector, counter and URL agreeing; the server
    must log no traceback and stay under ``SERVER_RSS_LIMIT_MB``."""
    deadline = time.monotonic() + SOAK_TIMEOUT_S
    seeds = engine.pool.seeds
    classes = [c for c in engine.catalogue.classes if c != "good" and engine.catalogue.image_ids("test", c)]
    plans = [(seeds[i % len(seeds)], classes[i % len(classes)]) for i in range(SOAK_SESSIONS)]
    rounds: list[float] = []
    with _chromium() as browser, ServedApp(model_info, log_path) as app:
        app.wait_listening(deadline)
        contexts, pages = _pages(browser, SOAK_SESSIONS, deadline)
        t0 = time.monotonic()
        for page, (seed, cls) in zip(pages, plans):
            page.goto(f"{app.url}?seed={seed}&split=test&class={cls}", wait_until="commit")
        for page, (seed, cls) in zip(pages, plans):
            page.locator(".pe-title-text", has_text=engine.catalogue.image_ids("test", cls)[0]).wait_for()
        for step in range(1, SOAK_CLICKS + 1):
            started = time.monotonic()
            for page in pages:
                page.get_by_role("button", name="Next ▶").click()
            for page, (seed, cls) in zip(pages, plans):
                ids = engine.catalogue.image_ids("test", cls)
                page.locator(".pe-title-text", has_text=ids[step % len(ids)]).wait_for()
            rounds.append(time.monotonic() - started)
        seconds = time.monotonic() - t0
        problems = []
        for page, (seed, cls) in zip(pages, plans):
            ids = engine.catalogue.image_ids("test", cls)
            wanted = ids[SOAK_CLICKS % len(ids)]
            shown = _page_state(page)
            counter = f"{SOAK_CLICKS % len(ids) + 1} / {len(ids)}"
            if not (wanted in shown["title"] and shown["selector"] == wanted and shown["counter"] == counter
                    and shown["url"] == wanted):
                problems.append({"seed": seed, "class": cls, "wanted": wanted, "counter": counter, **shown})
        peak = app.sampler.take_peak()
        for c in contexts:
            c.close()
        app.wait_released(SOAK_SESSIONS, deadline)
        after = app.rss_mb()
        tracebacks = app.tracebacks()
        fill_jobs = app.log().count("background fill: seed")
    return {"sessions": SOAK_SESSIONS, "clicks_per_session": SOAK_CLICKS, "seconds": seconds,
            "round_p50_s": _pct(rounds, 50), "round_max_s": max(rounds), "consistent_pages": SOAK_SESSIONS - len(problems),
            "inconsistent": problems, "tracebacks": len(tracebacks), "traceback_errors": tracebacks[:5],
            "peak_rss_mb": peak, "after_close_mb": after, "rss_limit_mb": SERVER_RSS_LIMIT_MB,
            "background_fill_jobs": fill_jobs,
            "ok": not problems and not tracebacks and peak < SERVER_RSS_LIMIT_MB,
            "what": f"{SOAK_SESSIONS} pages (one seed and defect class each) press Next {SOAK_CLICKS} times, all "
                    "pages per round, each waiting for its next image; round = from the presses to the last page "
                    "showing its image"}


# ------------------------------------------------------------------ section

def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def measure(engine, seed: int, cfg, clock, model_info: dict, scratch: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"status": "", "widget_change": {}, "sessions": {}, "first_view": {}, "rss": {},
                              "soak": {}, "note": ""}
    notes = []
    try:
        result["widget_change"] = widget_latency(engine, seed, clock, cfg.widget_changes)
        widget_ok = True
    except Exception as exc:  # noqa: BLE001 - reported in the notes; the server part still runs
        widget_ok = False
        log.exception("dashboard widget latency failed")
        notes.append(f"widget latency failed ({type(exc).__name__}: {exc})")
    try:
        result["sessions"] = together = concurrent_sessions(engine, seed)
        notes.append(
            f"{together['sessions']} sessions changing image at once, per session: cold latency p50 "
            f"{together['cold']['latency_p50_ms']:.0f} ms (max {together['cold']['latency_max_ms']:.0f}); warm "
            f"latency p50 {together['warm']['latency_p50_ms']:.0f} ms (max {together['warm']['latency_max_ms']:.0f}; "
            f"one session alone {together['alone']['latency_p50_ms']:.0f}); drawing p50 "
            f"{together['warm']['draw_p50_ms']:.0f} ms; longest wait between an answer and its drawing "
            f"{max(together['cold']['wait_for_drawing_max_ms'], together['warm']['wait_for_drawing_max_ms']):.0f} ms")
    except Exception as exc:  # noqa: BLE001
        widget_ok = False
        log.exception("dashboard concurrent sessions failed")
        notes.append(f"concurrent sessions failed ({type(exc).__name__}: {exc})")
    server_ok = soak_ok = False
    if not cfg.server:
        notes.append("server sessions and soak skipped (--no-server)")
    else:
        server_log, soak_log = Path(scratch) / "server.log", Path(scratch) / "soak.log"
        try:
            result.update(server_sessions(model_info, tuple(cfg.sessions), cfg.server_timeout, server_log))
            server_ok = all(result["rss"].get(f"sessions_{n}_rendered") == n for n in cfg.sessions)
            if not server_ok:
                notes.append("not every browser session rendered its maps before the time limit; server log: "
                             + _log_tail(server_log))
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard server measurement failed")
            notes.append(f"server measurement failed ({type(exc).__name__}: {exc}); server log: "
                         + _log_tail(server_log))
        try:
            result["soak"] = soaked = soak(engine, model_info, soak_log)
            soak_ok = soaked["ok"]
            notes.append(f"soak: {soaked['consistent_pages']} of {soaked['sessions']} pages consistent after "
                         f"{soaked['clicks_per_session']} clicks each, {soaked['tracebacks']} server tracebacks, peak "
                         f"RSS {soaked['peak_rss_mb']:.0f} MB (limit {soaked['rss_limit_mb']:.0f})")
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard soak failed")
            notes.append(f"soak failed ({type(exc).__name__}: {exc}); server log: " + _log_tail(soak_log))
    result["status"] = ("measured" if widget_ok and server_ok and soak_ok else
                        "partial" if widget_ok or server_ok or soak_ok else "failed")
    notes.append("RSS: the server runs with its defaults (shared engine, background fill of the splits people "
                 "look at, 256 MB map cache), so later cache growth is bounded by that cache size; it looks for closed "
                 "pages' sessions every second (--check-unused-sessions 1000), so they end 15-16 s after closing")
    result["note"] = "; ".join(notes)
    return result
