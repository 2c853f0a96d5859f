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

import pandas as pd
import pytest

from tests.browser.pages import (WAIT_S, assert_linked, assert_tkos, expected_tkos, new_page, open_page,
                                 opening_image_id, page_title, select_option, shown_tkos, wait_for_image)
from tests.waiting import wait_collected

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

@pytest.fixture(scope="module")
def engine(evaluated_engine):
    return evaluated_engine


# ----------------------------------------------------------------------------- tests


def test_page_shows_the_controls(web, server, engine):
    open_page(web, server)
    for label in ("Seed", "Split", "Class", "Image", "Methods", "Target"):
        assert web.locator("label", has_text=label).first.is_visible(), label
    assert web.get_by_text("Pixel Evidence — which explanation hits the defect?").first.is_visible()
    first = opening_image_id(engine)
    cls = engine.catalogue.sample(first).cls
    ids = engine.catalogue.image_ids("test", cls)
    assert web.locator(".pe-count-text").first.inner_text().strip() == f"{ids.index(first) + 1} / {len(ids)}"
    assert select_option(web, "Class").input_value() == cls
    assert first in page_title(web)
    assert_tkos(web, expected_tkos(engine, engine.pool.seeds[0], "test", first))
    for text in ("Grad-CAM", "Saliency", "Integrated Gradients"):
        assert web.locator(".pe-method-card", has_text=text).count() == 1
    assert_linked(web, 3)


def test_page_makes_no_request_beyond_this_server(web, server, engine):
    """Fonts, scripts and styles all come from the server: the page works offline and tells
    no third party who opens it (Panel's Fast design links a web font unless told not to)."""
    requested = []
    web.on("request", lambda request: requested.append(request.url))
    open_page(web, server)
    web.locator(".pe-method-row").first.wait_for()
    origin = server.rsplit("/", 1)[0]
    local = (origin, origin.replace("http", "ws", 1), "blob:" + origin, "data:")
    outside = [url for url in requested if not url.startswith(local)]
    assert requested and not outside, outside


def test_class_and_image_changes_update_the_numbers(web, server, engine):
    open_page(web, server)
    seed = engine.pool.seeds[0]
    hole = engine.catalogue.image_ids("test", "hole")
    select_option(web, "Class").select_option("hole")
    wait_for_image(web, hole[0])
    assert_tkos(web, expected_tkos(engine, seed, "test", hole[0]))
    web.get_by_role("button", name="Next ▶").click()
    wait_for_image(web, hole[1])
    assert web.locator(".pe-count-text").first.inner_text().strip() == f"2 / {len(hole)}"
    assert_tkos(web, expected_tkos(engine, seed, "test", hole[1]))
    # a good image: no numbers, no winner
    good = engine.catalogue.image_ids("test", "good")[0]
    select_option(web, "Class").select_option("good")
    wait_for_image(web, good)
    assert_tkos(web, expected_tkos(engine, seed, "test", good))
    assert set(shown_tkos(web).values()) == {"—"}
    assert web.get_by_text("nothing to rank, no winner").first.is_visible()
    assert web.locator(".pe-method-card", has_text="WINNER").count() == 0


def test_ranking_table_matches_the_engine(web, server, engine):
    from pixel_evidence.dashboard.formatting import fmt, rank_label

    open_page(web, server)
    seed = engine.pool.seeds[0]
    image_id = opening_image_id(engine)
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
    open_page(web, server)
    seed = engine.pool.seeds[0]
    image_id = opening_image_id(engine)
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
    open_page(web, f"{server}?seed={seed}&split=test&class=hole&image={hole}&methods=ig,saliency&target=predicted")
    wait_for_image(web, hole)
    assert select_option(web, "Seed").input_value() == str(seed)
    assert select_option(web, "Class").input_value() == "hole"
    assert select_option(web, "Image").input_value() == hole
    assert_tkos(web, expected_tkos(engine, seed, "test", hole, ("ig", "saliency")))
    assert web.locator(".pe-method-card", has_text="Grad-CAM").count() == 0
    assert_linked(web, 2)
    # the state goes back into the URL when it changes
    web.get_by_role("button", name="◀ Previous").click()
    first = engine.catalogue.image_ids("test", "hole")[0]
    wait_for_image(web, first)
    web.wait_for_function("id => window.location.search.includes('image=' + id)", arg=first)
    assert f"seed={seed}" in web.evaluate("window.location.search")


def test_bad_url_gets_a_notice(web, server, engine):
    open_page(web, f"{server}?class=scratch&image=no-such-image&seed=99")
    notice = web.locator(".pe-notice-text")
    notice.first.wait_for()
    text = notice.first.inner_text()
    assert "scratch" in text and "no-such-image" in text and "99" in text
    first = engine.catalogue.image_ids("test", "crack")[0]
    assert first in page_title(web)
    assert select_option(web, "Class").input_value() == "crack"
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
    open_page(web, f"{server}?agreement=pearson")
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
    opened = [new_page(chromium, viewport={"width": 1300, "height": 900}) for _ in wanted]
    contexts, pages = [c for c, _ in opened], [p for _, p in opened]
    try:
        for pg, (seed, image_id) in zip(pages, wanted):
            # one method keeps ten pages light enough for a 2-core machine
            pg.goto(f"{server}?seed={seed}&image={image_id}&methods=gradcam", wait_until="commit")
        for pg, (seed, image_id) in zip(pages, wanted):
            wait_for_image(pg, image_id)
            assert_tkos(pg, expected_tkos(engine, seed, "test", image_id, ("gradcam",)))
            assert select_option(pg, "Seed").input_value() == str(seed)
    finally:
        for c in contexts:
            c.close()


def test_new_method_and_faithfulness_curves(web, server, engine):
    """Pick Grad-CAM++ in the Methods box: its row and number appear; then the deletion /
    insertion curves of the image are computed on request and match the engine."""
    from pixel_evidence.dashboard.formatting import fmt

    open_page(web, server)
    seed = engine.pool.seeds[0]
    image_id = opening_image_id(engine)
    web.locator(".choices__input--cloned").first.fill("Grad-CAM++")
    web.locator(".choices__item--choice", has_text="Grad-CAM++").first.click()
    methods = ("gradcam", "saliency", "ig", "gradcam_pp")
    expected = expected_tkos(engine, seed, "test", image_id, methods)
    assert_tkos(web, expected)
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
    assert_linked(web, 4)  # the image panes still pan and zoom together
    assert fmt(ex.methods["gradcam_pp"].tko) == expected["gradcam_pp"]


def test_a_closed_page_lets_go_of_its_session(chromium, served):
    """Closing the page ends its session: the store lets go of its answer and work, the memory
    is collected, and nothing else (thread pools, caches, the host) keeps the page alive."""
    from pixel_evidence.dashboard.session_memory import SESSIONS

    context, page = new_page(chromium)
    open_page(page, served.url)
    mine = served.pages[-1]  # the tests run one after another: the newest page is this one
    context.close()
    SESSIONS.wait(lambda ledger: ledger.open == 0 and ledger.reclaimed == ledger.closed, WAIT_S)
    assert wait_collected([mine], WAIT_S) == []  # once its work in flight (an agreement, say) has settled
