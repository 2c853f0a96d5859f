"""A shared link can neither run script in the page nor flood it: the dashboard in headless Chromium.

A link's values come back in the page's notices, in the banner and in pop-ups, both of which
render HTML; they must arrive as text, quoted up to 80 characters. The server and browser
fixtures are tests/browser/conftest.py's; the engine is conftest's plain tiny one (no results needed).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.browser.pages import require_browser

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

WAIT_MS = 300_000  # a cap for a broken page, not a pace: CI machines run at load 10+ on 2 cores
URL_KEYS = ("seed", "split", "class", "image", "methods", "target", "tab", "score", "agreement")

# Notyf drops a pop-up after a few seconds; this keeps what each one said, and whether it held markup.
_RECORD_POPUPS = """
window.pePopups = [];
new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(node => {
  if (!node.querySelectorAll) return;
  node.querySelectorAll('.notyf__message').forEach(m => window.pePopups.push(
    {text: m.textContent, elements: m.querySelectorAll('*').length}));
}))).observe(document, {subtree: true, childList: true});
"""


@pytest.fixture(scope="module", autouse=True)
def _browser_present():
    require_browser()


def _injection(key: str) -> str:
    """Markdown that would fetch an outside image, and HTML that would open a dialog, if the
    page rendered them (the banner is an Alert, a Markdown pane)."""
    return f"![m](http://bad.invalid/{key}.png)<img src=x onerror=alert('{key}')>"


def test_a_link_cannot_run_script(web, server):
    dialogs, requested = [], []
    web.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    web.on("request", lambda request: requested.append(request.url))
    web.add_init_script(_RECORD_POPUPS)
    values = {key: _injection(key) for key in URL_KEYS}
    web.goto(f"{server}?{urlencode(values)}", timeout=WAIT_MS)

    banner = web.locator(".pe-notice-text").first
    banner.wait_for(timeout=WAIT_MS)
    text = banner.inner_text()
    for key, value in values.items():
        assert value in text, key  # shown as text
    assert web.locator(".pe-notice img").count() == 0
    # one pop-up per notice, text only
    web.wait_for_function("n => window.pePopups.length >= n", arg=len(values), timeout=WAIT_MS)
    popups = web.evaluate("window.pePopups")
    assert all(p["elements"] == 0 for p in popups), popups
    assert {value for value in values.values() if any(value in p["text"] for p in popups)} == set(values.values())
    # the page went on to the first image, and nothing ran or was fetched on the link's behalf
    web.locator(".pe-tko").first.wait_for(timeout=WAIT_MS)
    assert dialogs == []
    origin = server.rsplit("/", 1)[0]
    local = (origin, origin.replace("http", "ws", 1), "blob:" + origin, "data:")
    assert [url for url in requested if not url.startswith(local)] == []


def test_an_over_long_link_gets_the_apps_notice(web, server, engine):
    """20,000 characters (well under Tornado's 64 KB request limit, see the README): the app
    answers with its own notice, quoting the value's start, and opens the first image."""
    value = "long-" + "x" * 19_995
    web.goto(f"{server}?{urlencode({'image': value})}", timeout=WAIT_MS)
    banner = web.locator(".pe-notice-text").first
    banner.wait_for(timeout=WAIT_MS)
    text = banner.inner_text()
    assert f"Unknown image “{value[:80]}…”" in text and value[:81] not in text
    first = engine.catalogue.image_ids("test", "crack")[0]
    web.locator(".pe-title-text", has_text=first).wait_for(timeout=WAIT_MS)
    web.wait_for_function("id => window.location.search.includes('image=' + id)", arg=first, timeout=WAIT_MS)


# Values Panel's own query reader turns into numbers and fails on: "²" is a digit to str.isdigit but
# not to int(), and 5,000 digits exceed Python's limit for converting text to an int (4,300).
UNPARSABLE = {"superscript-two": "²", "5000-digits": "9" * 5000}
# what the notice of each key starts with, whichever value it could not use
NOTICE_OF = {"seed": "No model for seed “", "split": "Unknown split “", "class": "No class “",
             "image": "Unknown image “", "methods": "Unknown method(s) ", "target": "Unknown target “",
             "tab": "Unknown tab “", "score": "Unknown score “", "agreement": "Unknown agreement measure “",
             "mode": "Unknown mode “"}


@pytest.mark.parametrize("value", UNPARSABLE.values(), ids=UNPARSABLE.keys())
def test_a_value_panel_cannot_read_as_a_number_gets_the_apps_notice(web, server, engine, value):
    """Every key carries the value at once: the page still opens the first image and says, for
    each key, which value it could not use."""
    web.goto(f"{server}?{urlencode({key: value for key in NOTICE_OF})}", timeout=WAIT_MS)
    banner = web.locator(".pe-notice-text").first
    banner.wait_for(timeout=WAIT_MS)
    text = banner.inner_text()
    shown = value if len(value) <= 80 else value[:80] + "…"
    for key, notice in NOTICE_OF.items():
        assert notice + shown in text, key
    first = engine.catalogue.image_ids("test", "crack")[0]
    web.locator(".pe-title-text", has_text=first).wait_for(timeout=WAIT_MS)
