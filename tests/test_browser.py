"""The dashboard in a real headless Chromium, served by Panel from inside the test.

Needs Debian's ``chromium`` (``apt-get install chromium``); Playwright cannot download
browsers here. Without it these tests are skipped, except under ``CI=true`` where a missing
browser is a failure.

Every wait is for a state of the page (an element, a text, a value) or of the server (the
session ledger), never for the clock. Each has a generous cap, ``WAIT_S``: CI machines run
these tests at a load of 10 or more on two cores, where a page can take minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from waiting import wait_collected

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
WAIT_S = 300  # a cap on every wait, not an expectation
WAIT_MS = WAIT_S * 1000
# how often the server looks for sessions to end: a closed page's ends 15 s (Bokeh's default lifetime,
# which a slow page load needs) to 16 s after, instead of up to 32 s with Bokeh's default check
CHECK_SESSIONS_MS = 1000


def _require_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed (pip install playwright)"
    if problem is None and not CHROMIUM.is_file():
        problem = f"{CHROMIUM} not found (apt-get install -y chromium)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run under CI: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def engine(tiny_run, tmp_path_factory):
    """The tiny models (copied, so their results folder is private to this module), their test
    split evaluated: the least the summary's score choice and the results download need."""
    _require_browser()
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


def _new_page(chromium, **options: Any):
    """A page in a context of its own (no shared state), every wait capped at ``WAIT_S``."""
    context = chromium.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page


@pytest.fixture
def web(chromium):
    """A fresh browser page."""
    context, page = _new_page(chromium, viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    yield page
    context.close()


# ----------------------------------------------------------------------------- helpers


def _open(page, url: str) -> None:
    page.goto(url)
    page.locator(".pe-tko").first.wait_for()


def _opening(engine) -> str:
    """The image a link without a place opens: by the README's rule, from the module's results."""
    from pixel_evidence.dashboard.host import engine_catalogue

    opening = engine_catalogue(engine).opening
    assert opening, "this module's engine has evaluation results, so the rule names an image"
    return opening


def _select(page, label: str):
    group = page.locator(".bk-input-group", has=page.locator("label", has_text=label))
    return group.locator("select").first


def _title(page) -> str:
    return page.locator(".pe-title-text").inner_text()


def _wait_for_image(page, image_id: str) -> None:
    """Wait until the view shows ``image_id`` and nothing is loading any more."""
    from playwright.sync_api import expect

    page.locator(".pe-title-text", has_text=image_id).wait_for()
    expect(page.locator(".pn-loading")).to_have_count(0)


def _assert_tkos(page, expected: dict[str, str]) -> None:
    """Wait until the page shows exactly ``expected`` (method -> TKO text)."""
    from playwright.sync_api import expect

    expect(page.locator(".pe-tko")).to_have_count(len(expected))
    for method, text in expected.items():
        expect(page.locator(f".pe-tko[data-method={method}]")).to_have_text(text)
    assert _shown_tkos(page) == expected


# image panes only: the analysis charts below them (agreement, curves) have axes of their own
_RANGES_JS = """() => {
  const plots = [...Bokeh.documents[0].all_models].filter(m => m.x_range !== undefined && m.renderers !== undefined
    && m.renderers.some(r => r.glyph !== undefined && ['Image', 'ImageRGBA'].includes(r.glyph.type)));
  return {plots: plots.length, x: new Set(plots.map(p => p.x_range.id)).size,
          y: new Set(plots.map(p => p.y_range.id)).size, upright: plots.every(p => p.y_range.start > p.y_range.end)};
}"""


def _assert_linked(page, n_methods: int) -> None:
    """All image panes share one x and one y range (pan/zoom together), y inverted (upright images)."""
    ranges = page.evaluate(_RANGES_JS)
    assert ranges == {"plots": 3 + 2 * n_methods, "x": 1, "y": 1, "upright": True}


def _shown_tkos(page) -> dict[str, str]:
    tkos = page.locator(".pe-tko")
    return {tkos.nth(i).get_attribute("data-method"): tkos.nth(i).inner_text() for i in range(tkos.count())}


def _expected_tkos(engine, seed, split, image_id, methods=("gradcam", "saliency", "ig")) -> dict[str, str]:
    from pixel_evidence.dashboard.formatting import fmt

    ex = engine.explain(seed, image_id, split=split, methods=methods)
    return {k: (fmt(r.tko) if ex.rankable else "—") for k, r in ex.methods.items()}


# ----------------------------------------------------------------------------- tests


def test_page_shows_the_controls(web, server, engine):
    _open(web, server)
    for label in ("Seed", "Split", "Class", "Image", "Methods", "Target"):
        assert web.locator("label", has_text=label).first.is_visible(), label
    assert web.get_by_text("Pixel Evidence — which explanation hits the defect?").first.is_visible()
    first = _opening(engine)
    cls = engine.catalogue.sample(first).cls
    ids = engine.catalogue.image_ids("test", cls)
    assert web.locator(".pe-count-text").first.inner_text().strip() == f"{ids.index(first) + 1} / {len(ids)}"
    assert _select(web, "Class").input_value() == cls
    assert first in _title(web)
    _assert_tkos(web, _expected_tkos(engine, engine.pool.seeds[0], "test", first))
    for text in ("Grad-CAM", "Saliency", "Integrated Gradients"):
        assert web.locator(".pe-method-card", has_text=text).count() == 1
    _assert_linked(web, 3)


def test_page_makes_no_request_beyond_this_server(web, server, engine):
    """Fonts, scripts and styles all come from the server: the page works offline and tells
    no third party who opens it (Panel's Fast design links a web font unless told not to)."""
    requested = []
    web.on("request", lambda request: requested.append(request.url))
    _open(web, server)
    web.locator(".pe-method-row").first.wait_for()
    origin = server.rsplit("/", 1)[0]
    local = (origin, origin.replace("http", "ws", 1), "blob:" + origin, "data:")
    outside = [url for url in requested if not url.startswith(local)]
    assert requested and not outside, outside


def test_class_and_image_changes_update_the_numbers(web, server, engine):
    _open(web, server)
    seed = engine.pool.seeds[0]
    hole = engine.catalogue.image_ids("test", "hole")
    _select(web, "Class").select_option("hole")
    _wait_for_image(web, hole[0])
    _assert_tkos(web, _expected_tkos(engine, seed, "test", hole[0]))
    web.get_by_role("button", name="Next ▶").click()
    _wait_for_image(web, hole[1])
    assert web.locator(".pe-count-text").first.inner_text().strip() == f"2 / {len(hole)}"
    _assert_tkos(web, _expected_tkos(engine, seed, "test", hole[1]))
    # a good image: no numbers, no winner
    good = engine.catalogue.image_ids("test", "good")[0]
    _select(web, "Class").select_option("good")
    _wait_for_image(web, good)
    _assert_tkos(web, _expected_tkos(engine, seed, "test", good))
    assert set(_shown_tkos(web).values()) == {"—"}
    assert web.get_by_text("nothing to rank, no winner").first.is_visible()
    assert web.locator(".pe-method-card", has_text="WINNER").count() == 0


def test_ranking_table_matches_the_engine(web, server, engine):
    from pixel_evidence.dashboard.formatting import fmt, rank_label

    _open(web, server)
    seed = engine.pool.seeds[0]
    image_id = _opening(engine)
    ex = engine.explain(seed, image_id, split="test")
    rows = web.locator(".tabulator-row")
    assert rows.count() == len(ex.methods)
    shown = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        method = row.locator(".tabulator-cell[tabulator-field='Method']").inner_text().strip()
        shown[method] = (row.locator(".tabulator-cell[tabulator-field='TKO']").inner_text().strip(),
                         row.locator(".tabulator-cell[tabulator-field='Rank']").inner_text().strip())
    ranks = [r.rank for r in ex.methods.values()]
    assert shown == {r.label: (fmt(r.tko), rank_label(r.rank, ranks)) for r in ex.methods.values()}


def test_csv_downloads(web, server, engine, tmp_path):
    _open(web, server)
    seed = engine.pool.seeds[0]
    image_id = _opening(engine)
    with web.expect_download() as info:
        web.get_by_role("button", name="Ranking of this image (CSV)").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    df = pd.read_csv(path)
    ex = engine.explain(seed, image_id, split="test")
    assert path.name == f"pixel-evidence_seed{seed}_test_{image_id}_ranking.csv"
    assert len(df) == len(ex.methods) and set(df["image_id"]) == {image_id}
    assert {m: ex.methods[m].tko for m in ex.methods} == dict(zip(df["method"], df["tko"]))

    with web.expect_download() as info:
        web.get_by_role("button", name=f"Results of seed {seed} (CSV)").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    rows = pd.read_csv(path)
    table = pd.read_csv(engine.pool.models_dir / "results" / "tko_table.csv")
    assert len(rows) == int((table["seed"] == seed).sum()) > 0 and set(rows["seed"]) == {seed}
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, f"pixel-evidence_seed{seed}_test_{image_id}_ranking.csv"])


def test_url_reproduces_a_view(web, server, engine):
    seed = engine.pool.seeds[1]
    hole = engine.catalogue.image_ids("test", "hole")[1]
    _open(web, f"{server}?seed={seed}&split=test&class=hole&image={hole}&methods=ig,saliency&target=predicted")
    _wait_for_image(web, hole)
    assert _select(web, "Seed").input_value() == str(seed)
    assert _select(web, "Class").input_value() == "hole"
    assert _select(web, "Image").input_value() == hole
    _assert_tkos(web, _expected_tkos(engine, seed, "test", hole, ("ig", "saliency")))
    assert web.locator(".pe-method-card", has_text="Grad-CAM").count() == 0
    _assert_linked(web, 2)
    # the state goes back into the URL when it changes
    web.get_by_role("button", name="◀ Previous").click()
    first = engine.catalogue.image_ids("test", "hole")[0]
    _wait_for_image(web, first)
    web.wait_for_function("id => window.location.search.includes('image=' + id)", arg=first)
    assert f"seed={seed}" in web.evaluate("window.location.search")


def test_bad_url_gets_a_notice(web, server, engine):
    _open(web, f"{server}?class=scratch&image=no-such-image&seed=99")
    notice = web.locator(".pe-notice-text")
    notice.first.wait_for()
    text = notice.first.inner_text()
    assert "scratch" in text and "no-such-image" in text and "99" in text
    first = engine.catalogue.image_ids("test", "crack")[0]
    assert first in _title(web)
    assert _select(web, "Class").input_value() == "crack"
    web.wait_for_function("() => window.location.search.includes('class=crack')")


def test_the_winning_score_lives_in_the_url(web, server, engine):
    from playwright.sync_api import expect

    from pixel_evidence.dashboard.formatting import score_name  # the options' labels, which the page's <select> holds

    web.goto(f"{server}?tab=summary&score=auroc")
    choice = web.locator(".pe-score-select select")
    expect(choice).to_have_value(score_name("auroc"))
    choice.select_option(label=score_name("pointing"))
    web.wait_for_function("() => window.location.search.includes('score=pointing')")
    # a score these results lack falls back to TKO, with a notice
    web.goto(f"{server}?tab=summary&score=relevance_mass")
    notice = web.locator(".pe-notice-text")
    notice.first.wait_for()
    assert "no relevance mass column" in notice.first.inner_text()
    web.wait_for_function("() => window.location.search.includes('score=tko')")
    assert choice.input_value() == score_name("tko")


def test_the_agreement_measure_lives_in_the_url(web, server):
    """The per-image matrix opens on the URL's measure; choosing another one rewrites the URL."""
    _open(web, f"{server}?agreement=pearson")
    section = web.locator(".pe-agreement").first
    # the matrix's caption names the measure (text locators reach into Panel's shadow roots)
    section.get_by_text("Pearson r, this image").wait_for()
    section.get_by_role("button", name="top-20% IoU").click()
    web.wait_for_function("() => window.location.search.includes('agreement=top_iou')")
    section.get_by_text("top-20% IoU, this image").wait_for()


def test_ten_sessions_at_once(chromium, server, engine):
    """Ten visitors open different images at the same moment: every page shows its own numbers."""
    ids = [i for c in ("crack", "hole", "good") for i in engine.catalogue.image_ids("test", c)]
    seeds = engine.pool.seeds
    wanted = [(seeds[i % len(seeds)], ids[i % len(ids)]) for i in range(10)]
    opened = [_new_page(chromium, viewport={"width": 1300, "height": 900}) for _ in wanted]
    contexts, pages = [c for c, _ in opened], [p for _, p in opened]
    try:
        for pg, (seed, image_id) in zip(pages, wanted):
            # one method keeps ten pages light enough for a 2-core machine
            pg.goto(f"{server}?seed={seed}&image={image_id}&methods=gradcam", wait_until="commit")
        for pg, (seed, image_id) in zip(pages, wanted):
            _wait_for_image(pg, image_id)
            _assert_tkos(pg, _expected_tkos(engine, seed, "test", image_id, ("gradcam",)))
            assert _select(pg, "Seed").input_value() == str(seed)
    finally:
        for c in contexts:
            c.close()


def test_new_method_and_faithfulness_curves(web, server, engine):
    """Pick Grad-CAM++ in the Methods box: its row and number appear; then the deletion /
    insertion curves of the image are computed on request and match the engine."""
    from pixel_evidence.dashboard.formatting import fmt

    _open(web, server)
    seed = engine.pool.seeds[0]
    image_id = _opening(engine)
    web.locator(".choices__input--cloned").first.fill("Grad-CAM++")
    web.locator(".choices__item--choice", has_text="Grad-CAM++").first.click()
    methods = ("gradcam", "saliency", "ig", "gradcam_pp")
    expected = _expected_tkos(engine, seed, "test", image_id, methods)
    _assert_tkos(web, expected)
    row = web.locator(".pe-method-row", has=web.locator(".pe-tko[data-method=gradcam_pp]"))
    assert row.count() == 1 and re.fullmatch(r"\d\.\d{3}", row.locator(".pe-tko").inner_text().strip())
    assert web.locator(".pe-slow-text").count() == 0  # no slow method chosen
    web.wait_for_function("() => window.location.search.includes('gradcam_pp')")
    # four methods: the agreement matrix is on the page
    web.locator(".pe-agreement").first.wait_for()

    web.get_by_role("button", name="Compute deletion & insertion curves").click()
    table = web.locator(".pe-faith-table")
    table.wait_for()
    ex = engine.explain(seed, image_id, split="test", methods=methods)
    curves = engine.faithfulness(ex, start="black", steps=20)  # cached: the numbers the page got
    aucs = web.locator(".pe-faith-table .pe-auc")
    shown = {(aucs.nth(i).get_attribute("data-method"), aucs.nth(i).get_attribute("data-mode")): aucs.nth(i).inner_text()
             for i in range(aucs.count())}
    assert shown == {(m, mode): f"{c.auc:.3f}" for m, by_mode in curves.items() for mode, c in by_mode.items()}
    # one chart per mode, drawn (not blank): two more Bokeh plots with a line per method
    web.wait_for_function("""() => [...Bokeh.documents[0].all_models].filter(m => m.title !== undefined && m.title
        && /^(Deletion|Insertion) /.test(m.title.text || '')).length == 2""")
    _assert_linked(web, 4)  # the image panes still pan and zoom together
    assert fmt(ex.methods["gradcam_pp"].tko) == expected["gradcam_pp"]


def test_a_closed_page_lets_go_of_its_session(chromium, served):
    """Closing the page ends its session: the store lets go of its answer and work, the memory
    is collected, and nothing else (thread pools, caches, the host) keeps the page alive."""
    from pixel_evidence.dashboard.session_memory import SESSIONS

    context, page = _new_page(chromium)
    _open(page, served.url)
    mine = served.pages[-1]  # the tests run one after another: the newest page is this one
    context.close()
    SESSIONS.wait(lambda ledger: ledger.open == 0 and ledger.reclaimed == ledger.closed, WAIT_S)
    assert wait_collected([mine], WAIT_S) == []  # once its work in flight (an agreement, say) has settled
