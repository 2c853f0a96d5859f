"""Names from files and links on their way into HTML, Markdown and CSV, in process.

The browser tests (tests/browser/test_page_safety.py, test_hostile_names.py) show the same in a page;
these pin each piece: the helper every view uses, the error box, the exported figure's
words, the CSV downloads, and the Host check's rule.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "![m](http://bad.invalid/m.png)",
    "[link](javascript:alert(1))",
    "\"quotes\" and 'single' & amp",
    "`code` $x^2$ \\",
]


class _Tags(HTMLParser):
    """The start tags of an HTML text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


@pytest.mark.parametrize("value", HOSTILE)
def test_plain_is_text_in_html_and_in_markdown(value):
    """As HTML it reads back as the value itself and makes no tag; through the Markdown
    renderer of Panel's Markdown and Alert panes it makes no image, code or maths, and no link
    whose target differs from its text (the renderer links a bare address to itself, which
    fetches nothing and hides nothing)."""
    from markdown_it import MarkdownIt

    from pixel_evidence.dashboard.markup import plain

    shown = plain(value)
    assert html.unescape(shown) == value and _Tags(shown).tags == []
    rendered = MarkdownIt("gfm-like").render(f"Unknown image “{shown}”")
    assert set(_Tags(rendered).tags) <= {"p", "a"}, rendered
    text = html.unescape(re.sub(r'<a href="([^"]*)">\1</a>', r"\1", rendered)).strip()
    assert text == f"<p>Unknown image “{value}”</p>", rendered


def test_plain_in_an_attribute_keeps_the_attribute_closed():
    from pixel_evidence.dashboard.markup import plain

    tags = []

    class Attrs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, attrs))

    Attrs().feed(f"<span title='{plain(HOSTILE[3])}' data-x=\"{plain(HOSTILE[0])}\">x</span>")
    assert tags == [("span", [("title", HOSTILE[3]), ("data-x", HOSTILE[0])])]


def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote():
    """OWASP's prefixes (= + - @ tab CR) in text cells and column names get a leading quote;
    numbers, negative ones too, and other text are written as they are."""
    from pixel_evidence.dashboard.export import table_csv

    df = pd.DataFrame({"image_id": ["=1+2", "+cmd", "-2+3", "@SUM(1)", "\tx", "\rx", "good-001", "a=b"],
                       "tko": [-0.5, 0.25, -1.0, 0.0, 1.0, 0.5, 0.75, float("nan")],
                       "rank": [-1, 2, 3, 4, 5, 6, 7, 8],
                       "=label": ["x"] * 8})
    rows = list(csv.reader(io.StringIO(table_csv(df).getvalue().decode("utf-8"))))
    assert rows[0] == ["image_id", "tko", "rank", "'=label"]
    assert [r[0] for r in rows[1:]] == ["'=1+2", "'+cmd", "'-2+3", "'@SUM(1)", "'\tx", "'\rx", "good-001", "a=b"]
    assert [r[1] for r in rows[1:]] == ["-0.5", "0.25", "-1.0", "0.0", "1.0", "0.5", "0.75", ""]
    assert [r[2] for r in rows[1:]] == [str(v) for v in df["rank"]]


def test_the_error_box_names_the_image_and_the_error_as_text(dash, monkeypatch):
    def fails(*_args, **_kwargs):
        raise ValueError("cannot identify image file 'test/<img src=x onerror=alert(1)>.png'")

    monkeypatch.setattr(dash.engine, "explain", fails)
    dash.state.step(1)
    error = dash.store.error
    assert error.startswith("Could not explain ") and "cannot identify image file" in error
    assert _Tags(error).tags == [] and "&lt;img src=x onerror=alert(1)&gt;" in error


def test_the_exported_figure_shows_the_names_as_text(engine):
    from pixel_evidence.dashboard.export import _summary_html

    ex = engine.explain(engine.pool.seeds[0], engine.catalogue.image_ids("test", "crack")[0],
                        methods=["gradcam", "saliency"])
    hostile = dataclasses.replace(ex, image_id=HOSTILE[0], true_class=HOSTILE[1])
    text = _summary_html(hostile)
    assert "<img" not in text and html.escape(HOSTILE[0]) in text
    assert _Tags(text).tags.count("img") == 0 and "onerror=alert(1)" in html.unescape(text)


@pytest.mark.parametrize("host, origin, allowed", [
    ("127.0.0.1:5006", "http://127.0.0.1:5006", True),
    ("localhost:5006", "http://localhost:5006", True),
    ("[::1]:5006", "http://[::1]:5006", True),
    ("localhost:5006", None, True),
    ("class.example", "https://class.example", True),         # the operator's name, default port
    ("evil.example", "http://evil.example", False),           # DNS rebinding: Host and Origin agree
    ("evil.example:5006", None, False),
    ("127.0.0.1:5006", "http://evil.example", False),
    ("127.0.0.1:5006", "http://127.0.0.1:8888", False),      # another local port's page
    ("127.0.0.1:5006", "null", False),                        # a file or sandboxed page
    ("", None, False),
])
def test_the_host_rule(host, origin, allowed):
    from pixel_evidence.dashboard.allowed_hosts import refusal

    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    assert (refusal(headers, ["class.example:80"], 5006) == "") is allowed
