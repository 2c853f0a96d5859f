"""Dashboard part of ``pixel-evidence bench``: server-side latency and memory.

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
3. Peak RSS: ``panel serve app.py`` as a subprocess on a free loopback port, then headless
   Chromium (Playwright) opens 1, and then 10 concurrent sessions; the server's RSS is
   sampled from ``/proc`` until every page shows its method rows or the time limit is hit.
   Every step is bounded in time; the server and browser are stopped at the end.

A part that fails is reported in the section's notes and its status, never silently skipped.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

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

    from dashboard.app import Dashboard

    dash = Dashboard(engine)
    pn.panel(dash).get_root(Document())  # Bokeh models exist, as for a served session
    dash.store.refresh()
    return dash


def _defect_pool(engine) -> list[str]:
    return [i for i in engine.image_ids("test") if engine.sample(i).has_mask]


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

        def timed_compute(req):
            out = compute(req)
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


# ------------------------------------------------------------------ server memory

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


def _wait_http(url: str, deadline: float, proc: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in time")


def server_memory(model_info: dict, sessions: tuple[int, ...], timeout: float, log_path: Path) -> dict[str, Any]:
    """Peak RSS of one ``panel serve app.py`` process per number of concurrent sessions."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/app"
    cmd = [sys.executable, "-m", "panel", "serve", str(PROJECT_ROOT / "app.py"), "--port", str(port),
           "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}",
           "--args", "--data", model_info["data"], "--models", model_info["models_dir"]]
    out: dict[str, Any] = {"url_path": "/app", "command": " ".join(cmd[1:4] + ["app.py", "--args", "--data", "DATA",
                                                                                 "--models", "MODELS"])}
    deadline = time.monotonic() + timeout
    with open(log_path, "wb") as server_log:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=server_log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            _wait_http(url, deadline, proc)
            out["idle_mb"] = _rss_mb(proc.pid)
            sampler.take_peak()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
                try:
                    for n in sessions:
                        contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)]
                        pages = [c.new_page() for c in contexts]
                        t0 = time.monotonic()
                        for p in pages:
                            p.goto(url, wait_until="commit", timeout=max(1, deadline - time.monotonic()) * 1000)
                        rendered = 0
                        for p in pages:
                            left = deadline - time.monotonic()
                            if left <= 0:
                                break
                            try:
                                p.locator(RENDERED).first.wait_for(timeout=left * 1000)
                                rendered += 1
                            except Exception:  # noqa: BLE001 - a page that never renders is reported
                                pass
                        settle = time.monotonic() + 2.0  # let the last updates arrive
                        while time.monotonic() < min(settle, deadline):
                            time.sleep(0.1)
                        out[f"sessions_{n}_peak_mb"] = sampler.take_peak()
                        out[f"sessions_{n}_rendered"] = rendered
                        out[f"sessions_{n}_seconds_to_render"] = time.monotonic() - t0
                        for c in contexts:
                            c.close()
                        if rendered < n:
                            log.warning("%d of %d sessions rendered before the time limit", rendered, n)
                finally:
                    browser.close()
            out["vm_hwm_mb"] = _rss_mb(proc.pid, "VmHWM")
        finally:
            sampler.stop()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    return out


# ------------------------------------------------------------------ section

def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def measure(engine, seed: int, cfg, clock, model_info: dict, scratch: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"status": "", "widget_change": {}, "sessions": {}, "rss": {}, "note": ""}
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
    server_ok = False
    server_log = Path(scratch) / "server.log"
    if not cfg.server:
        notes.append("server sessions skipped (--no-server)")
    else:
        try:
            result["rss"] = server_memory(model_info, tuple(cfg.sessions), cfg.server_timeout, server_log)
            server_ok = all(result["rss"].get(f"sessions_{n}_rendered") == n for n in cfg.sessions)
            if not server_ok:
                notes.append("not every browser session rendered its maps before the time limit; server log: "
                             + _log_tail(server_log))
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard server measurement failed")
            notes.append(f"server measurement failed ({type(exc).__name__}: {exc}); server log: "
                         + _log_tail(server_log))
    result["status"] = ("measured" if widget_ok and server_ok else
                        "partial" if widget_ok or server_ok else "failed")
    notes.append("RSS: the server runs with its defaults (shared engine, background precompute of the test split, "
                 "256 MB map cache), so later cache growth is bounded by that cache size")
    result["note"] = "; ".join(notes)
    return result
