"""The Units tab in headless Chromium: opened from the tab bar, it shows the detector counts of
the dissected stage and, per defect class, the seed's best unit with the table's IoU. The
server and browser fixtures are tests/browser/conftest.py's; every wait is for a state of the page."""

from __future__ import annotations

import shutil

import pytest

from tests.browser.pages import require_browser

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

STAGE = "encoder.7"


@pytest.fixture(scope="module", autouse=True)
def _browser_present():
    require_browser()


@pytest.fixture(scope="module")
def engine(tiny_run, tmp_path_factory):
    """The tiny models (copied: the dissection table goes into the copy's results folder), with
    one stage of one seed dissected over the test split."""
    from pixel_evidence.dissection.table import DISSECTION_SUBDIR
    from pixel_evidence.engine.dissector import dissect_seeds
    from pixel_evidence.engine.explain import ExplanationEngine

    root, models, *_ = tiny_run
    copy = tmp_path_factory.mktemp("dissection") / "models"
    shutil.copytree(models, copy)
    eng = ExplanationEngine(root, copy, device="cpu", method_params={"ig": {"n_steps": 4}})
    dissect_seeds(eng.dissector, copy / "results" / DISSECTION_SUBDIR, seeds=[eng.pool.seeds[0]], stages=[STAGE],
                  split="test")
    yield eng
    eng.close()


def test_units_tab_shows_each_classs_best_unit_with_the_tables_iou(web, server, engine):
    from playwright.sync_api import expect

    from pixel_evidence.dashboard.formatting import fmt
    from pixel_evidence.dashboard.units_view import STRIP_IMAGES
    from pixel_evidence.dissection.table import read_dissection

    table = read_dissection(engine.pool.models_dir / "results" / "dissection")
    web.goto(server)
    web.locator(".pe-tko").first.wait_for()
    web.locator(".bk-tab", has_text="Units").click()
    web.locator(".pe-unit-row").first.wait_for()

    expect(web.locator(f".pe-detector-count[data-stage='{STAGE}']")).to_have_count(1)
    for cls, part in table.groupby("class"):
        best = part.sort_values(["iou", "unit"], ascending=[False, True]).iloc[0]
        row = web.locator(f".pe-unit-row[data-class='{cls}']").first
        expect(row).to_have_attribute("data-unit", str(int(best["unit"])))
        expect(row.locator(".pe-unit-iou")).to_have_text(fmt(best["iou"]))
        expect(row.locator("img")).to_have_count(min(STRIP_IMAGES, len(engine.catalogue.image_ids("test", cls))))
    web.wait_for_function("() => window.location.search.includes('tab=units')")
