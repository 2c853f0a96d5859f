"""A data set whose class and file names carry markup, quotes and spreadsheet formulas goes
through split, training, evaluation, the served dashboard and every download, and stays text.

The names are the attack: a folder someone else made. In the browser no dialog may open and
no request may leave the server (the page, its tabs, its error box, and the HTML figure opened
from disk); in the CSV downloads no text cell may start as a formula. The server and browser
fixtures are tests/browser/conftest.py's, on this module's ``engine``.
"""

from __future__ import annotations

import csv
import io
import shutil

import pytest
from PIL import Image

from tests.browser.pages import WAIT_MS, require_browser
from tests.layout_trees import make_mvtec_tree

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

# markup that fetches from outside or opens a dialog if rendered, quotes, Markdown, formulas (a
# file name holds no "/", but a browser reads the backslashes of a URL as slashes)
MARKUP_CLASS = "<img src=\\\\bad.invalid\\c.png onerror=alert('class')>"
FORMULA_CLASS = "=1+2 \"double\" 'single'"
HOSTILE_STEMS = ("<img src=x onerror=alert('file')>", "-2+3", "@SUM(1)", "+cmd", "![m](x.png) `c` $x$")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """Split, train (one seed, one epoch) and evaluate the test split of the hostile tree."""
    from pixel_evidence.data import prepare_manifest
    from pixel_evidence.models.train import TrainConfig, train_seeds

    require_browser()
    base = tmp_path_factory.mktemp("hostile")
    root = make_mvtec_tree(base / "cat <b>'x'</b>", n_train_good=8,
                           n_test={"good": 3, MARKUP_CLASS: 6, FORMULA_CLASS: 6}, size=64)
    for cls in (MARKUP_CLASS, FORMULA_CLASS):  # hostile file names, masks beside them
        for i, stem in enumerate(HOSTILE_STEMS):
            (root / "test" / cls / f"{i:03d}.png").rename(root / "test" / cls / f"{stem}.png")
            (root / "ground_truth" / cls / f"{i:03d}_mask.png").rename(root / "ground_truth" / cls / f"{stem}_mask.png")
    models = base / "models"
    prepare_manifest(root, models / "manifest.csv")
    cfg = TrainConfig(seeds=[5], epochs=1, batch_size=8, lr=1e-3, image_size=64, backbone="efficientnet_lite0",
                      pretrained=True, channels_last=False, device="cpu")
    train_seeds(cfg, root, models / "manifest.csv", models)
    return root, models


@pytest.fixture(scope="module")
def engine(hostile_run):
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate

    root, models = hostile_run
    eng = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 4}})
    evaluate(eng, models / "results", splits=("test", "train"), progress=False)
    yield eng
    eng.close()


def _hostile_ids(engine) -> list[str]:
    ids = [i for split in ("test", "train") for i in engine.catalogue.image_ids(split)]
    return [i for i in ids if i.startswith((MARKUP_CLASS, FORMULA_CLASS))]


def _rows(buffer: io.BytesIO) -> list[list[str]]:
    return list(csv.reader(io.StringIO(buffer.getvalue().decode("utf-8"))))


def _assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            try:
                float(cell)
                continue  # a number, a negative one too, is a number
            except ValueError:
                assert not cell.startswith(FORMULA_STARTS), cell


def test_the_csv_downloads_hold_no_formula(engine):
    """The ranking of each hostile image and the seed's results: the cells that would be
    formulas start with a quote, the numbers (negative ones too) stay numbers."""
    from pixel_evidence.dashboard import export
    from pixel_evidence.dashboard.catalogue import Catalogue
    from pixel_evidence.dashboard.host import SHARED
    from pixel_evidence.results import results_dir

    quoted = set()
    for image_id in _hostile_ids(engine):
        ex = engine.explain(5, image_id, split=_split_of(engine, image_id), methods=["gradcam", "saliency", "ig"])
        rows = _rows(export.ranking_csv(ex))
        _assert_no_formula(rows)
        header = rows[0]
        quoted.add(rows[1][header.index("image_id")])
    assert "'" + f"{FORMULA_CLASS}--2+3" in quoted and "'" + f"{FORMULA_CLASS}-@SUM(1)" in quoted
    results = SHARED.evaluation_results(results_dir(engine.pool.models_dir))
    rows = _rows(export.table_csv(results.seed_rows(5)))
    _assert_no_formula(rows)
    assert any(cell.startswith("'=1+2") for row in rows for cell in row)
    assert Catalogue.from_engine(engine).classes  # the catalogue read the hostile names


def _split_of(engine, image_id: str) -> str:
    return next(split for split in ("test", "train") if image_id in engine.catalogue.image_ids(split))


def _watch(page, origin: str) -> tuple[list[str], list[str]]:
    """Dialogs opened and requests that left ``origin`` (blocked), from now on."""
    dialogs, outside = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    def route(r):
        url = r.request.url
        if url.startswith((origin, origin.replace("http", "ws", 1), "blob:", "data:", "file:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    page.route("**", route)
    return dialogs, outside


def test_the_page_and_the_html_figure_run_no_script_of_the_names(web, server, engine, tmp_path):
    """Each hostile image, the summary with its tables opened, the units and about tabs, an
    image whose file broke after the server started (the error box), then the downloaded HTML
    figure opened from disk: no dialog, no request beyond the server, the names shown as text."""
    from urllib.parse import urlencode

    from panel.io.resources import CDN_DIST

    origin = server.rsplit("/", 1)[0]
    dialogs, outside = _watch(web, origin)
    ids = _hostile_ids(engine)
    markup_id = next(i for i in ids if i.startswith(MARKUP_CLASS) and "onerror=alert('file')" in i)
    web.goto(f"{server}?{urlencode({'image': markup_id})}", timeout=WAIT_MS)
    web.locator(".pe-title-text", has_text=markup_id).wait_for(timeout=WAIT_MS)
    web.locator(".pe-tko").first.wait_for(timeout=WAIT_MS)
    assert markup_id in web.locator(".pe-title-text").inner_text()

    with web.expect_download(timeout=WAIT_MS) as download:
        web.get_by_role("button", name="Figure (HTML, works offline)").click()
    figure = tmp_path / "figure.html"
    download.value.save_as(figure)
    for name, check in (("PNG", "Figure (PNG)"), ("ranking", "Ranking of this image (CSV)")):
        with web.expect_download(timeout=WAIT_MS) as other:
            web.get_by_role("button", name=check).click()
        assert other.value.failure() is None, name

    for tab in ("Units", "How to read this", "Summary"):
        web.locator(".bk-tab", has_text=tab).click()
    web.locator(".pe-summary-loading").wait_for(state="detached", timeout=WAIT_MS)
    for header in web.locator(".card-header").all():  # the tables behind the plots, class names as columns
        header.click()
    web.get_by_text("Confusion matrix counts", exact=False).first.wait_for(timeout=WAIT_MS)

    # an image whose file is broken now: the red box names it and quotes the error, both as text
    broken = next(i for i in ids if i.startswith(MARKUP_CLASS) and i != markup_id)
    broken_file = engine.catalogue.data_root / engine.catalogue.sample(broken).path
    shutil.copy(broken_file, tmp_path / "kept.png")
    engine.clear_cache()  # the image is read again, from the broken file
    try:
        broken_file.write_bytes(b"not a picture <img src=x onerror=alert('error')>")
        web.goto(f"{server}?{urlencode({'image': broken})}", timeout=WAIT_MS)
        box = web.get_by_text("Could not explain").first
        box.wait_for(timeout=WAIT_MS)
        assert broken in box.inner_text()
    finally:
        shutil.copy(tmp_path / "kept.png", broken_file)

    web.goto(figure.as_uri(), timeout=WAIT_MS)
    web.locator("h2", has_text=markup_id).wait_for(timeout=WAIT_MS)
    web.locator("canvas").first.wait_for(timeout=WAIT_MS)  # the figures drew, names in their titles
    # Panel asks its CDN for the summary tables' Tabulator theme (a stylesheet, the same for any
    # data): a fault of its own, left to its own fix; nothing else may leave
    assert dialogs == [] and [url for url in outside if not url.startswith(CDN_DIST)] == []
    assert web.locator("img[src='x'], img[src^='http']").count() == 0
    assert Image.open(tmp_path / "kept.png").size == (64, 64)
