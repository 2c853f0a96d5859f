"""The summary's critical-difference diagram for the shipped results, in headless Chromium: the
diagram of the study methods and of the sweep's whole field is on the page, and its PNG, SVG
and CSV downloads hold that diagram. The expected ranks come from the shipped tables, read
here with pandas. The server and browser fixtures are tests/browser/conftest.py's; every wait
is for a state of the page."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pixel_evidence.methods import method_labels
from pixel_evidence.metrics.significance import compare_over_seeds
from pixel_evidence.results import read_store
from tests.browser.pages import require_browser

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

SHIPPED = Path(__file__).resolve().parents[2] / "pretrained_models"
SVG_TEXT = "{http://www.w3.org/2000/svg}text"


@pytest.fixture(scope="module")
def engine():
    """The shipped models on the built-in data; the summary reads pretrained_models/results."""
    require_browser()
    from pixel_evidence.engine.explain import load_engine

    eng = load_engine(device="cpu")
    yield eng
    eng.close()


def _svg_texts(svg: bytes) -> str:
    return "\n".join("".join(t.itertext()) for t in ET.fromstring(svg).iter(SVG_TEXT))


def _expected_labels(rows: pd.DataFrame) -> list[str]:
    """Each method's label and average rank as the diagram writes them, best first."""
    ranks = compare_over_seeds(rows, score="tko").pooled.ranks
    labels = method_labels()
    return [f"{labels[m]} ({r:.2f})" for m, r in zip(ranks["method"], ranks["average_rank"])]


def _shown_svg(web) -> bytes:
    src = web.locator(".pe-cd-diagram img").get_attribute("src")
    head, data = src.split(",", 1)
    assert head == "data:image/svg+xml;base64"
    return base64.b64decode(data)


def _download(web, kind: str, tmp_path: Path) -> tuple[str, bytes]:
    with web.expect_download() as info:
        web.locator(f".pe-cd-{kind}").get_by_role("button").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    return path.name, path.read_bytes()


def test_the_summary_shows_the_cd_diagram_and_its_downloads(web, server, engine, tmp_path):
    from playwright.sync_api import expect

    table = pd.read_csv(SHIPPED / "results" / "tko_table.csv")
    study = _expected_labels(table[table["split"] == "test"])
    web.goto(f"{server}?tab=summary")
    web.locator(".pe-cd-diagram img").wait_for()
    shown = _svg_texts(_shown_svg(web))
    assert all(label in shown for label in study), shown
    expect(web.locator(".pe-cd").get_by_text("Methods joined by a bar are not significantly different")).to_be_visible()

    name, svg = _download(web, "svg", tmp_path)
    assert name == "pixel-evidence_cd_study_tko_test.svg"
    assert all(label in _svg_texts(svg) for label in study)
    name, png = _download(web, "png", tmp_path)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert name.endswith(".png") and image.format == "PNG" and image.size[0] > 1000
    name, csv = _download(web, "csv", tmp_path)
    numbers = pd.read_csv(io.BytesIO(csv))
    assert [f"{label} ({r:.2f})" for label, r in zip(numbers["label"], numbers["average_rank"])] == study
    # one block per (seed, image) of a correctly classified defect image (a good one has no TKO)
    counted = table[(table["split"] == "test") & table["correct"] & table["tko"].notna()]
    assert set(numbers["n_blocks"]) == {counted.groupby(["seed", "class", "image_id"]).ngroups}

    # the whole field: the sweep store's fourteen methods on the test split
    sweep = read_store(SHIPPED / "results" / "sweep")
    field = _expected_labels(sweep.category(sweep.categories[0]))
    assert len(field) == 14
    web.locator(".pe-cd-set").get_by_role("button", name="Whole field").click()
    # the line under the heading names the best two methods side by side once the field is drawn
    best_two = " / ".join(label.rsplit(" (", 1)[0] for label in field[:2])
    expect(web.locator(".pe-cd").get_by_text(best_two)).to_be_visible()
    shown = _svg_texts(_shown_svg(web))
    assert all(label in shown for label in field), shown
    name, csv = _download(web, "csv", tmp_path)
    assert name == "pixel-evidence_cd_field_tko_test_synthetic-hazelnut-v1.csv"
    assert len(pd.read_csv(io.BytesIO(csv))) == 14
