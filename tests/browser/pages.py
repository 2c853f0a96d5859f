"""What the browser tests share: where Chromium is, how long a wait may last, and the page
helpers (open, select, read the shown numbers). The fixtures are in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
WAIT_S = 300  # a cap on every wait, not an expectation
WAIT_MS = WAIT_S * 1000
# how often the server looks for sessions to end: a closed page's ends 15 s (Bokeh's default lifetime,
# which a slow page load needs) to 16 s after, instead of up to 32 s with Bokeh's default check
CHECK_SESSIONS_MS = 1000


def require_browser() -> None:
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


def new_page(chromium, **options: Any):
    """A page in a context of its own (no shared state), every wait capped at ``WAIT_S``."""
    context = chromium.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page


def open_page(page, url: str) -> None:
    page.goto(url)
    page.locator(".pe-tko").first.wait_for()


def opening_image_id(engine) -> str:
    """The image a link without a place opens: by the README's rule, from the module's results."""
    from pixel_evidence.dashboard.host import engine_catalogue

    opening = engine_catalogue(engine).opening
    assert opening, "this module's engine has evaluation results, so the rule names an image"
    return opening


def select_option(page, label: str):
    group = page.locator(".bk-input-group", has=page.locator("label", has_text=label))
    return group.locator("select").first


def page_title(page) -> str:
    return page.locator(".pe-title-text").inner_text()


def wait_for_image(page, image_id: str) -> None:
    """Wait until the view shows ``image_id`` and nothing is loading any more."""
    from playwright.sync_api import expect

    page.locator(".pe-title-text", has_text=image_id).wait_for()
    expect(page.locator(".pn-loading")).to_have_count(0)


def assert_tkos(page, expected: dict[str, str]) -> None:
    """Wait until the page shows exactly ``expected`` (method -> TKO text)."""
    from playwright.sync_api import expect

    expect(page.locator(".pe-tko")).to_have_count(len(expected))
    for method, text in expected.items():
        expect(page.locator(f".pe-tko[data-method={method}]")).to_have_text(text)
    assert shown_tkos(page) == expected


# image panes only: the analysis charts below them (agreement, curves) have axes of their own
RANGES_JS = """() => {
  const plots = [...Bokeh.documents[0].all_models].filter(m => m.x_range !== undefined && m.renderers !== undefined
    && m.renderers.some(r => r.glyph !== undefined && ['Image', 'ImageRGBA'].includes(r.glyph.type)));
  return {plots: plots.length, x: new Set(plots.map(p => p.x_range.id)).size,
          y: new Set(plots.map(p => p.y_range.id)).size, upright: plots.every(p => p.y_range.start > p.y_range.end)};
}"""


def assert_linked(page, n_methods: int) -> None:
    """All image panes share one x and one y range (pan/zoom together), y inverted (upright images)."""
    ranges = page.evaluate(RANGES_JS)
    assert ranges == {"plots": 3 + 2 * n_methods, "x": 1, "y": 1, "upright": True}


def shown_tkos(page) -> dict[str, str]:
    tkos = page.locator(".pe-tko")
    return {tkos.nth(i).get_attribute("data-method"): tkos.nth(i).inner_text() for i in range(tkos.count())}


def expected_tkos(engine, seed, split, image_id, methods=("gradcam", "saliency", "ig")) -> dict[str, str]:
    from pixel_evidence.dashboard.formatting import fmt

    ex = engine.explain(seed, image_id, split=split, methods=methods)
    return {k: (fmt(r.tko) if ex.rankable else "—") for k, r in ex.methods.items()}
