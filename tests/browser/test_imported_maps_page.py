"""An imported method in headless Chromium: the engine's Grad-CAM maps, exported and imported
as ``mycam``, get a card of their own in the per-image view (with Grad-CAM's TKO, marked as
imported, no cost) and rows in the summary. The server and browser fixtures are
tests/browser/conftest.py's; every wait is for a state of the page."""

from __future__ import annotations

import shutil

import pytest

from tests.browser.pages import require_browser, wait_for_image
from tests.map_files import export_maps

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")


@pytest.fixture(scope="module")
def engine(tiny_run, tmp_path_factory):
    """The tiny models (copied) with Grad-CAM's maps imported as ``mycam`` and the test split
    evaluated with it, so the summary has its rows."""
    require_browser()
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate
    from pixel_evidence.imported_maps import import_maps

    root, models, *_ = tiny_run
    base = tmp_path_factory.mktemp("browser-imported")
    copy = base / "models"
    shutil.copytree(models, copy)
    plain = ExplanationEngine(root, copy, device="cpu")
    written, problems = import_maps(export_maps(plain, base / "maps", "mycam"), copy)
    plain.close()
    assert written and not problems, problems
    eng = ExplanationEngine(root, copy, device="cpu", method_params={"ig": {"n_steps": 4}})
    evaluate(eng, copy / "results", splits=("test",), methods=("gradcam", "saliency", "ig", "mycam"), progress=False)
    yield eng
    eng.close()


def test_the_per_image_view_shows_the_imported_methods_card(web, server, engine):
    from playwright.sync_api import expect

    from pixel_evidence.dashboard.formatting import fmt

    seed, image_id = engine.pool.seeds[0], engine.catalogue.image_ids("test", "crack")[0]
    web.goto(f"{server}?seed={seed}&split=test&class=crack&image={image_id}&methods=gradcam,mycam")
    wait_for_image(web, image_id)
    ex = engine.explain(seed, image_id, split="test", methods=("gradcam", "mycam"))
    assert ex.methods["mycam"].tko == ex.methods["gradcam"].tko
    expect(web.locator(".pe-tko[data-method=mycam]")).to_have_text(fmt(ex.methods["mycam"].tko))
    expect(web.locator(".pe-tko[data-method=gradcam]")).to_have_text(fmt(ex.methods["gradcam"].tko))
    card = web.locator(".pe-method-card[data-method=mycam]")
    expect(card).to_contain_text("mycam (imported)")
    expect(card).to_contain_text("Cost: imported: made elsewhere, not timed here")


def test_the_summary_has_the_imported_methods_rows(web, server, engine):
    web.goto(f"{server}?tab=summary")
    # the win-rate charts' legend names it by its label (the Methods box's hidden option does too)
    web.locator("b:text-is('mycam (imported)')").first.wait_for()
