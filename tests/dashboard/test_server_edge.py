"""``panel serve app.py`` as a subprocess on the tiny models: who may connect, and how it stops.

The Host check (DNS rebinding): raw websocket handshakes and page requests with chosen Host
and Origin headers. The stop: SIGTERM while the background fill computes a split ends the
process within seconds, not after the split. Every wait is for a state (a log line, a page
element), capped by ``WAIT_S``; the only bound that is a claim is the stop's ``STOP_S``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 300  # a cap for a broken server, not a pace: CI machines run at load 10+ on 2 cores
# Far above the image in hand plus the process's own teardown on a busy machine, far below the
# split left to fill: at 600 IG steps an image takes seconds, the split's other 19 a minute or more.
STOP_S = 30
SLOW_IG_STEPS = "600"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serving:
    """A ``panel serve app.py --warm`` process, its port and its log."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, words: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while words not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, f"the server never logged {words!r}:\n{self.text()}"
            time.sleep(0.2)


@contextmanager
def serving(tiny_run, tmp_path: Path, serve_args: list[str] = (), app_args: list[str] = ()) -> Iterator[Serving]:
    root, models, *_ = tiny_run
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "app.py", "--warm", "--port", str(port),
                                 "--address", "127.0.0.1", *serve_args,
                                 "--args", "--data", str(root), "--models", str(models), *app_args],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    served = Serving(proc, port, log)
    try:
        served.wait_for_line("Bokeh app running at")
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- who may connect


def _handshake(port: int, host: str, origin: str | None) -> int | str:
    """A websocket handshake with these headers: "ACK" when the server opened a session and said
    so, else the HTTP status that refused it."""
    from bokeh.util.token import generate_jwt_token, generate_session_id
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def attempt() -> int | str:
        headers = {"Host": host, **({"Origin": origin} if origin else {})}
        request = HTTPRequest(f"ws://127.0.0.1:{port}/app/ws", headers=headers, request_timeout=WAIT_S)
        token = generate_jwt_token(generate_session_id(), signed=False)
        try:
            conn = await websocket_connect(request, subprotocols=["bokeh", token])
        except HTTPClientError as exc:
            return exc.code
        try:
            header = await asyncio.wait_for(conn.read_message(), WAIT_S)  # a message's first part
            return "ACK" if header is not None and '"msgtype":"ACK"' in header.replace(" ", "") else str(header)
        finally:
            conn.close()

    return asyncio.run(attempt())


def _page_status(port: int, host: str) -> int:
    from tornado.httpclient import HTTPClient, HTTPClientError

    client = HTTPClient()
    try:
        return client.fetch(f"http://127.0.0.1:{port}/app", headers={"Host": host}, request_timeout=WAIT_S).code
    except HTTPClientError as exc:
        return exc.code
    finally:
        client.close()


def test_only_allowed_hosts_open_a_session(tiny_run, tmp_path):
    """Allowed: the loopback names on the served port, and the operator's own name. Refused with
    403 before a session is made: a foreign Host even with a matching Origin (DNS rebinding),
    and a foreign Origin, another local port's page included."""
    with serving(tiny_run, tmp_path, ["--allow-websocket-origin", "class.example"]) as served:
        p = served.port
        cases = {
            ("127.0.0.1", f"127.0.0.1:{p}", f"http://127.0.0.1:{p}"): "ACK",
            ("localhost", f"localhost:{p}", f"http://localhost:{p}"): "ACK",
            ("the operator's name", "class.example", "http://class.example"): "ACK",
            ("no Origin (not a browser)", f"127.0.0.1:{p}", None): "ACK",
            ("rebinding: foreign Host, matching Origin", "evil.example", "http://evil.example"): 403,
            ("rebinding with the port", f"evil.example:{p}", f"http://evil.example:{p}"): 403,
            ("foreign Origin", f"127.0.0.1:{p}", "http://evil.example"): 403,
            ("another local port's page", f"localhost:{p}", f"http://localhost:{p + 1}"): 403,
        }
        answers = {case: _handshake(p, host, origin) for case, host, origin in cases}
        assert answers == {case: want for (case, *_), want in cases.items()}
        assert _page_status(p, f"127.0.0.1:{p}") == 200
        assert _page_status(p, "evil.example") == 403
        assert "refused GET /app: Host 'evil.example' is not an allowed host" in served.text()


# ----------------------------------------------------------------------------- how it stops


def test_sigterm_stops_the_server_while_the_background_fill_runs(tiny_run, tmp_path):
    """A page's first view starts the fill of its split; SIGTERM in the middle of it ends the
    process within STOP_S, where before the fix it computed the rest of the split first."""
    from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    with serving(tiny_run, tmp_path, app_args=["--ig-steps", SLOW_IG_STEPS]) as served:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(WAIT_S * 1000)
                page.goto(f"http://127.0.0.1:{served.port}/app")
                page.locator(".pe-tko").first.wait_for()
                served.wait_for_line("background fill: seed")
            finally:
                browser.close()
        assert "precomputed seed" not in served.text()  # the split is still being filled
        served.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            served.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_S} s after SIGTERM:\n{served.text()[-3000:]}")
        took = time.monotonic() - sent
        assert "shutting down" in served.text()
        assert "precomputed seed" not in served.text(), "the fill went on to the end of the split"
        print(f"stopped {took:.1f} s after SIGTERM")
