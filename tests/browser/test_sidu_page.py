"""SIDU picked in the dashboard's Methods box, in headless Chromium: its row, number and slow
notice appear, the number is the engine's, and the choice lands in the URL. The server and
browser fixtures are tests/browser/conftest.py's; every wait is for a state of the page."""

from __future__ import annotations

import pytest

from tests.browser.pages import require_browser

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")


@pytest.fixture(scope="module", autouse=True)
def _browser_present():
    require_browser()


def test_sidu_can_be_picked_and_shows_the_engines_number(web, server, engine):
    from playwright.sync_api import expect

    from pixel_evidence.dashboard.formatting import fmt

    web.goto(server)
    web.locator(".pe-tko").first.wait_for()
    image_id = engine.catalogue.image_ids("test", "crack")[0]
    web.locator(".pe-title-text", has_text=image_id).wait_for()
    web.locator(".choices__input--cloned").first.fill("SIDU")
    web.locator(".choices__item--choice", has_text="SIDU (slow)").first.click()

    expect(web.locator(".pe-slow-text")).to_contain_text("SIDU")
    ex = engine.explain(engine.pool.seeds[0], image_id, split="test", methods=("gradcam", "saliency", "ig", "sidu"))
    expect(web.locator(".pe-tko[data-method=sidu]")).to_have_text(fmt(ex.methods["sidu"].tko))
    expect(web.locator(".pe-tko")).to_have_count(4)
    web.wait_for_function("() => window.location.search.includes('sidu')")
