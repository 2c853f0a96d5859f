"""The page at the window sizes people use: a 1366 × 768 laptop or projector and a 1920 × 1080
screen, and presentation mode for the back of a lecture hall.

Screenshots of both tabs at both sizes go to ``tmp_path`` (kept by pytest for a look after
a failure). Every measurement waits first for the page's state: the panes drawn at the size
the window asks for (:func:`pixel_evidence.dashboard.sizes.pane_sizes`), nothing loading.
"""

from __future__ import annotations

import pytest

from tests.browser.pages import WAIT_MS, new_page, opening_image_id, require_browser

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

SIZES = ((1366, 768), (1920, 1080))

# every element, through the widgets' shadow roots, whose right edge passes the window's
_BEYOND_JS = """() => {
  const out = [];
  const walk = (root) => { for (const el of root.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.right > innerWidth + 1)
      out.push(`${el.tagName}.${String(el.className).slice(0, 40)} ${Math.round(r.left)}-${Math.round(r.right)}`);
    if (el.shadowRoot) walk(el.shadowRoot);
  } };
  walk(document);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth, beyond: out.slice(0, 10)};
}"""

# the page has drawn the method panes at ``size`` (a frame that wide in the first method row)
_PANES_AT_JS = """size => [...Bokeh.documents[0].all_models].filter(m => m.frame_width === size
  && m.renderers !== undefined && m.renderers.some(r => r.glyph !== undefined && r.glyph.type === 'Image')).length > 0"""

# the summary's charts (Bokeh figures with a title) as [title, plot frame width, frame height]
_CHART_FRAMES_JS = """() => [...Bokeh.index.query(v => v.model.type === 'Figure' && v.model.title != null
  && v.model.title.text)].map(v => [v.model.title.text, v.frame.bbox.width, v.frame.bbox.height])"""
# the summary's charts drawn (its TKO boxes among them, which every test set has) and laid out
_CHARTS_LAID_OUT_JS = f"""() => {{ const frames = ({_CHART_FRAMES_JS})();
  return frames.some(([title]) => title.startsWith('TKO per defect image'))
    && frames.every(([, width, height]) => width > 100 && height > 100); }}"""


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not on the page"
    return box


def _inside(box: dict, width: int, height: int) -> bool:
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height


def _open_at(chromium, server, width: int, height: int, query: str = ""):
    from playwright.sync_api import expect

    from pixel_evidence.dashboard.sizes import pane_sizes

    context, page = new_page(chromium, viewport={"width": width, "height": height})
    page.goto(f"{server}{query}")
    page.locator(".pe-tko").first.wait_for()
    presenting = "mode=presentation" in query
    page.wait_for_function(_PANES_AT_JS, arg=pane_sizes(width, height, presenting).method, timeout=WAIT_MS)
    expect(page.locator(".pn-loading")).to_have_count(0)
    return context, page


@pytest.fixture(scope="module", autouse=True)
def _browser_present():
    require_browser()


@pytest.mark.parametrize("width,height", SIZES)
def test_the_answer_is_above_the_fold_and_nothing_is_cut_off(chromium, server, width, height, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    context, page = _open_at(chromium, server, width, height)
    try:
        page.screenshot(path=str(tmp_path / f"image_{width}.png"))
        if (width, height) == (1366, 768):  # the winner, the ranking and the first method's pictures
            for selector in (".pe-verdict", ".tabulator", ".pe-method-row"):
                box = _box(page, selector)
                assert _inside(box, width, height), (selector, box)
        page_size = page.evaluate(_BEYOND_JS)
        assert page_size["scrollWidth"] <= page_size["innerWidth"] and not page_size["beyond"], page_size

        page.locator(".bk-tab", has_text="Summary").first.click()
        page.locator(".pe-score-select").first.wait_for()
        expect(page.locator(".pe-summary-loading")).to_have_count(0)
        expect(page.locator(".pn-loading")).to_have_count(0)
        # every chart laid out: one drawn with an empty plot frame shows only its labels, piled in a
        # corner (a chart in a FlexBox, see pixel_evidence.dashboard.summary.section.side_by_side)
        try:
            page.wait_for_function(_CHARTS_LAID_OUT_JS, timeout=WAIT_MS)
        except PlaywrightTimeout:
            pytest.fail(f"summary charts [title, frame width, frame height]: {page.evaluate(_CHART_FRAMES_JS)}")
        page.screenshot(path=str(tmp_path / f"summary_{width}.png"))
        page_size = page.evaluate(_BEYOND_JS)
        assert page_size["scrollWidth"] <= page_size["innerWidth"] and not page_size["beyond"], page_size
    finally:
        context.close()


@pytest.fixture(scope="module")
def engine(evaluated_engine):
    return evaluated_engine


def test_the_maps_grow_with_the_window(chromium, server):
    from pixel_evidence.dashboard.sizes import pane_sizes

    small, large = (pane_sizes(w, h).method for w, h in SIZES)
    assert large > small * 1.5  # the sizes the two windows ask for; each page waits for its own
    for width, height in SIZES:
        context, _page = _open_at(chromium, server, width, height)
        context.close()


def test_a_new_page_draws_its_panes_once_at_the_windows_size(chromium, server):
    """The page reports its window before the view is built, so no figure is laid out at the
    default size and then again at the window's (each pass of nine figures took seconds of the
    browser's time). Every figure reports each layout's frame width to the server: read them."""
    import json

    from pixel_evidence.dashboard.sizes import DEFAULT, pane_sizes

    width, height = 1920, 1080
    wanted = pane_sizes(width, height)
    assert {wanted.top, wanted.method}.isdisjoint({DEFAULT.top, DEFAULT.method})  # else nothing to tell apart
    widths: list[int] = []

    def sent(payload) -> None:
        try:
            events = json.loads(payload).get("events", [])
        except (TypeError, ValueError, AttributeError):
            return
        widths.extend(e["new"] for e in events if e.get("kind") == "ModelChanged" and e.get("attr") == "inner_width")

    context, page = new_page(chromium, viewport={"width": width, "height": height})
    try:
        page.on("websocket", lambda ws: ws.on("framesent", sent))
        page.goto(server)
        page.locator(".pe-tko").first.wait_for()
        page.wait_for_function(_PANES_AT_JS, arg=wanted.method, timeout=WAIT_MS)
        assert wanted.method in widths  # the method panes reported their layout
        assert not {DEFAULT.top, DEFAULT.method} & set(widths), widths
    finally:
        context.close()


def _font_px(page, selector: str) -> float:
    return page.locator(selector).first.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")


def test_presentation_mode_is_large_and_steps_with_the_arrow_keys(chromium, server, engine, tmp_path):
    from playwright.sync_api import expect

    context, page = _open_at(chromium, server, 1366, 768, "?mode=presentation")
    try:
        page.screenshot(path=str(tmp_path / "presentation_1366.png"))
        # sidebar: a widget's own label, the labels the sidebar adds, the image count; the legend
        for selector in (".bk-input-group label", ".pe-model-text", ".pe-count-text", ".pe-legend", ".pe-legend b"):
            assert _font_px(page, selector) >= 18, selector
        assert _font_px(page, ".pe-verdict") >= 40 and _font_px(page, ".pe-tko") >= 60
        expect(page.locator(".pe-legend .pe-explain")).to_be_hidden()
        first = opening_image_id(engine)
        ids = engine.catalogue.image_ids("test", engine.catalogue.sample(first).cls)
        after = ids[(ids.index(first) + 1) % len(ids)]
        page.locator(".pe-title-text", has_text=first).wait_for()
        page.keyboard.press("ArrowRight")
        page.locator(".pe-title-text", has_text=after).wait_for()
        page.wait_for_function("id => window.location.search.includes('image=' + id)", arg=after)
        page.keyboard.press("ArrowLeft")
        page.locator(".pe-title-text", has_text=first).wait_for()
    finally:
        context.close()


def test_arrow_keys_do_nothing_outside_presentation_mode(chromium, server, engine):
    context, page = _open_at(chromium, server, 1366, 768)
    try:
        first = opening_image_id(engine)
        page.keyboard.press("ArrowRight")
        # the state to wait for: a round trip through the server after the key (a click that changes the tab)
        page.locator(".bk-tab", has_text="How to read this").first.click()
        page.wait_for_function("() => window.location.search.includes('tab=about')")
        assert f"image={first}" in page.evaluate("window.location.search")
    finally:
        context.close()
