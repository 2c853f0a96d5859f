"""The dashboard in a real headless Chromium, served by Panel from inside the test.

Needs Debian's ``chromium`` (``apt-get install chromium``); Playwright cannot download
browsers here. Without it these tests are skipped, except under ``CI=true`` where a missing
browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 60_000


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def engine(tiny_run, tmp_path_factory):
    """The tiny models (copied, so their results folder is private to this module), evaluated."""
    _require_browser()
    from engine.evaluate import evaluate
    from engine.explain import ExplanationEngine

    root, models, *_ = tiny_run
    copy = tmp_path_factory.mktemp("browser") / "models"
    shutil.copytree(models, copy)
    eng = ExplanationEngine(root, copy, device="cpu", method_params={"ig": {"n_steps": 4}})
    evaluate(eng, copy / "results", progress=False, extra_metrics=["pointing", "auroc"])
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def server(engine):
    import panel as pn

    from dashboard.app import create_app

    port = _free_port()
    thread = pn.serve({"app": lambda: create_app(engine=engine)}, port=port, address="127.0.0.1",
                      websocket_origin=[f"127.0.0.1:{port}"], threaded=True, show=False, start=True,
                      verbose=False)
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=30).read()
            break
        except OSError:
            if time.time() > deadline:
                thread.stop()
                raise
            time.sleep(0.3)
    yield url
    thread.stop()
    # Panel swaps Bokeh's process-wide current document in and out around each session it
    # builds; sessions built at once (ten at a time below) can leave one of theirs in place,
    # which in-process tests after this module would take for their own session.
    from bokeh.document import Document
    from bokeh.io.doc import set_curdoc

    set_curdoc(Document())


@pytest.fixture(scope="module")
def chromium(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def web(chromium):
    """A fresh browser page (own context: no shared state between tests)."""
    context = chromium.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()


# ----------------------------------------------------------------------------- helpers


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".pe-tko", timeout=TIMEOUT_MS)


def _select(page, label: str):
    group = page.locator(".bk-input-group", has=page.locator("label", has_text=label))
    return group.locator("select").first


def _title(page) -> str:
    return page.locator(".pe-title-text").inner_text()


def _wait_for_image(page, image_id: str) -> None:
    """Wait until the view shows ``image_id`` and nothing is loading any more."""
    page.locator(".pe-title-text", has_text=image_id).wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('.pn-loading')", timeout=TIMEOUT_MS)


def _eventually(check, timeout: float = 20.0):
    """``check()`` returns (ok, detail); retry until ok or the timeout, then fail with the detail."""
    deadline = time.time() + timeout
    while True:
        ok, detail = check()
        if ok:
            return
        if time.time() > deadline:
            pytest.fail(f"not reached within {timeout:.0f}s: {detail}")
        time.sleep(0.25)


def _assert_tkos(page, expected: dict[str, str]) -> None:
    def check():
        shown = _shown_tkos(page)
        return shown == expected, f"shown {shown}, engine {expected}"

    _eventually(check)


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
    from dashboard.formatting import fmt

    ex = engine.explain(seed, split, image_id, methods)
    return {k: (fmt(r.tko) if ex.rankable else "—") for k, r in ex.methods.items()}


# ----------------------------------------------------------------------------- tests


def test_page_shows_the_controls(web, server, engine):
    _open(web, server)
    for label in ("Seed", "Split", "Class", "Image", "Methods", "Target"):
        assert web.locator("label", has_text=label).first.is_visible(), label
    assert web.get_by_text("Pixel Evidence — which explanation hits the defect?").first.is_visible()
    n = len(engine.image_ids("test", "crack"))
    assert web.locator(".pe-count-text").first.inner_text().strip() == f"1 / {n}"
    assert _select(web, "Class").input_value() == "crack"
    first = engine.image_ids("test", "crack")[0]
    assert first in _title(web)
    _assert_tkos(web, _expected_tkos(engine, engine.seeds[0], "test", first))
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
    seed = engine.seeds[0]
    hole = engine.image_ids("test", "hole")
    _select(web, "Class").select_option("hole")
    _wait_for_image(web, hole[0])
    _assert_tkos(web, _expected_tkos(engine, seed, "test", hole[0]))
    web.get_by_role("button", name="Next ▶").click()
    _wait_for_image(web, hole[1])
    assert web.locator(".pe-count-text").first.inner_text().strip() == f"2 / {len(hole)}"
    _assert_tkos(web, _expected_tkos(engine, seed, "test", hole[1]))
    # a good image: no numbers, no winner
    good = engine.image_ids("test", "good")[0]
    _select(web, "Class").select_option("good")
    _wait_for_image(web, good)
    _eventually(lambda: (set(_shown_tkos(web).values()) == {"—"}, _shown_tkos(web)))
    assert web.get_by_text("nothing to rank, no winner").first.is_visible()
    assert web.locator(".pe-method-card", has_text="WINNER").count() == 0


def test_ranking_table_matches_the_engine(web, server, engine):
    from dashboard.formatting import fmt, rank_label

    _open(web, server)
    seed = engine.seeds[0]
    image_id = engine.image_ids("test", "crack")[0]
    ex = engine.explain(seed, "test", image_id)
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
    seed = engine.seeds[0]
    image_id = engine.image_ids("test", "crack")[0]
    with web.expect_download(timeout=TIMEOUT_MS) as info:
        web.get_by_role("button", name="Ranking of this image (CSV)").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    df = pd.read_csv(path)
    ex = engine.explain(seed, "test", image_id)
    assert path.name == f"pixel-evidence_seed{seed}_test_{image_id}_ranking.csv"
    assert len(df) == len(ex.methods) and set(df["image_id"]) == {image_id}
    assert {m: ex.methods[m].tko for m in ex.methods} == dict(zip(df["method"], df["tko"]))

    with web.expect_download(timeout=TIMEOUT_MS) as info:
        web.get_by_role("button", name=f"Results of seed {seed} (CSV)").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    rows = pd.read_csv(path)
    table = pd.read_csv(engine.models_dir / "results" / "tko_table.csv")
    assert len(rows) == int((table["seed"] == seed).sum()) > 0 and set(rows["seed"]) == {seed}
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, f"pixel-evidence_seed{seed}_test_{image_id}_ranking.csv"])


def test_url_reproduces_a_view(web, server, engine):
    seed = engine.seeds[1]
    hole = engine.image_ids("test", "hole")[1]
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
    first = engine.image_ids("test", "hole")[0]
    _wait_for_image(web, first)
    web.wait_for_function("id => window.location.search.includes('image=' + id)", arg=first)
    assert f"seed={seed}" in web.evaluate("window.location.search")


def test_bad_url_gets_a_notice(web, server, engine):
    _open(web, f"{server}?class=scratch&image=no-such-image&seed=99")
    notice = web.locator(".pe-notice-text")
    notice.first.wait_for(timeout=TIMEOUT_MS)
    text = notice.first.inner_text()
    assert "scratch" in text and "no-such-image" in text and "99" in text
    first = engine.image_ids("test", "crack")[0]
    assert first in _title(web)
    assert _select(web, "Class").input_value() == "crack"
    web.wait_for_function("() => window.location.search.includes('class=crack')")


def test_the_winning_score_lives_in_the_url(web, server, engine):
    from dashboard.formatting import score_name  # the options' labels, which the page's <select> holds

    web.goto(f"{server}?tab=summary&score=auroc")
    choice = web.locator(".pe-score-select select")
    choice.wait_for(timeout=TIMEOUT_MS)
    _eventually(lambda: (choice.input_value() == score_name("auroc"), choice.input_value()))
    choice.select_option(label=score_name("pointing"))
    web.wait_for_function("() => window.location.search.includes('score=pointing')")
    # a score these results lack falls back to TKO, with a notice
    web.goto(f"{server}?tab=summary&score=relevance_mass")
    notice = web.locator(".pe-notice-text")
    notice.first.wait_for(timeout=TIMEOUT_MS)
    assert "no relevance mass column" in notice.first.inner_text()
    web.wait_for_function("() => window.location.search.includes('score=tko')")
    assert choice.input_value() == score_name("tko")


def test_the_agreement_measure_lives_in_the_url(web, server):
    """The per-image matrix opens on the URL's measure; choosing another one rewrites the URL."""
    _open(web, f"{server}?agreement=pearson")
    section = web.locator(".pe-agreement").first
    # the matrix's caption names the measure (text locators reach into Panel's shadow roots)
    section.get_by_text("Pearson r, this image").wait_for(timeout=TIMEOUT_MS)
    section.get_by_role("button", name="top-20% IoU").click()
    web.wait_for_function("() => window.location.search.includes('agreement=top_iou')")
    section.get_by_text("top-20% IoU, this image").wait_for(timeout=TIMEOUT_MS)


def test_ten_sessions_at_once(chromium, server, engine):
    """Ten visitors open different images at the same moment: every page shows its own numbers."""
    ids = [i for c in ("crack", "hole", "good") for i in engine.image_ids("test", c)]
    seeds = engine.seeds
    wanted = [(seeds[i % len(seeds)], ids[i % len(ids)]) for i in range(10)]
    contexts = [chromium.new_context(viewport={"width": 1300, "height": 900}) for _ in wanted]
    try:
        pages = [c.new_page() for c in contexts]
        for pg, (seed, image_id) in zip(pages, wanted):
            pg.set_default_timeout(TIMEOUT_MS * 2)
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
    from dashboard.formatting import fmt

    _open(web, server)
    seed = engine.seeds[0]
    image_id = engine.image_ids("test", "crack")[0]
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
    table.wait_for(timeout=TIMEOUT_MS)
    ex = engine.explain(seed, "test", image_id, methods)
    curves = engine.faithfulness(ex, start="black", steps=20)  # cached: the numbers the page got
    aucs = web.locator(".pe-faith-table .pe-auc")
    shown = {(aucs.nth(i).get_attribute("data-method"), aucs.nth(i).get_attribute("data-mode")): aucs.nth(i).inner_text()
             for i in range(aucs.count())}
    assert shown == {(m, mode): f"{c.auc:.3f}" for m, by_mode in curves.items() for mode, c in by_mode.items()}
    # one chart per mode, drawn (not blank): two more Bokeh plots with a line per method
    web.wait_for_function("""() => [...Bokeh.documents[0].all_models].filter(m => m.title !== undefined && m.title
        && /^(Deletion|Insertion) /.test(m.title.text || '')).length == 2""", timeout=TIMEOUT_MS)
    _assert_linked(web, 4)  # the image panes still pan and zoom together
    assert fmt(ex.methods["gradcam_pp"].tko) == expected["gradcam_pp"]
