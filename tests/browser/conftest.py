"""Fixtures of the browser tests: a Panel server in a thread of the test process, on a module's
``engine``, and a headless Chromium. Every test here is marked ``browser``."""

from __future__ import annotations

import shutil
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import CHECK_SESSIONS_MS, CHROMIUM, CHROMIUM_ARGS, WAIT_MS, WAIT_S, new_page, require_browser


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def evaluated_engine(tiny_run, tmp_path_factory):
    """The tiny models (copied, so their results folder is private to this module), their test
    split evaluated: the least the summary's score choice and the results download need."""
    require_browser()
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate

    root, models, *_ = tiny_run
    copy = tmp_path_factory.mktemp("browser") / "models"
    shutil.copytree(models, copy)
    eng = ExplanationEngine(root, copy, device="cpu", method_params={"ig": {"n_steps": 4}})
    evaluate(eng, copy / "results", splits=("test",), progress=False, extra_metrics=["pointing", "auroc"])
    yield eng
    eng.close()


class Served:
    """A Panel server running in a thread of its own, and the pages it has built."""

    def __init__(self, engine: Any):
        from pixel_evidence.dashboard.host import EngineHost

        self.host = EngineHost.for_engine(engine)  # one host for all sessions, as under ``panel serve``
        self.engine = engine
        self.pages: list[weakref.ref] = []  # every session's template, to check it is let go
        listening: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(listening,), name="test-server", daemon=True)
        self._thread.start()
        self.server = listening.result(timeout=WAIT_S)
        self.url = f"http://127.0.0.1:{self.server.port}/app"

    def _page(self) -> Any:
        from pixel_evidence.dashboard.app import create_app

        template = create_app(engine=self.engine, host=self.host)
        self.pages.append(weakref.ref(template))
        return template

    def _run(self, listening: Future) -> None:
        """Bind the port, say so, then serve until stopped: a browser's first request, made as
        soon as ``listening`` resolves, waits in the socket's queue until the loop runs."""
        from panel.io.server import get_server
        from tornado.ioloop import IOLoop

        loop = IOLoop(make_current=False)
        try:
            server = get_server({"app": self._page}, port=0, address="127.0.0.1", websocket_origin=["127.0.0.1"],
                                loop=loop, show=False, start=False, verbose=False,
                                check_unused_sessions_milliseconds=CHECK_SESSIONS_MS)
            server.start()
        except BaseException as exc:  # noqa: BLE001 - raised in the test that waits for the server
            listening.set_exception(exc)
            return
        listening.set_result(server)
        loop.start()
        loop.close()

    def stop(self) -> None:
        self.server.io_loop.add_callback(self.server.stop)
        self.server.io_loop.add_callback(self.server.io_loop.stop)
        self._thread.join(WAIT_S)


@pytest.fixture(scope="module")
def served(engine):
    served = Served(engine)
    yield served
    served.stop()
    # Panel swaps Bokeh's process-wide current document in and out around each session it
    # builds; sessions built at once (ten at a time below) can leave one of theirs in place,
    # which in-process tests after this module would take for their own session.
    from bokeh.document import Document
    from bokeh.io.doc import set_curdoc

    set_curdoc(Document())


@pytest.fixture(scope="module")
def server(served):
    return served.url


@pytest.fixture(scope="module")
def chromium(server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def web(chromium):
    """A fresh browser page."""
    context, page = new_page(chromium, viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    yield page
    context.close()
