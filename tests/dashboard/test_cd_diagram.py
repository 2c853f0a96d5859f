"""The summary's critical-difference diagram on a planted table whose answer is known by hand.

Four methods on 3 seeds x 20 correctly classified defect images: ``top`` scores highest on
every image (rank 1), ``low`` lowest (rank 4), and ``mid_a`` / ``mid_b`` take turns (each
ranks 2 on half the images and 3 on the other half: average 2.5). Demšar's (2006) table
gives q_0.05 = 2.569 for four methods, so with N = 60 blocks CD = 2.569 sqrt(4 * 5 / 360)
= 0.6055: the two middle methods (0 apart) share the one bar, and the 1.5 gaps to ``top``
and ``low`` are separated. Within one seed (N = 20) CD = 1.049 < 1.5, so each seed
separates ``top`` from ``mid_a`` and ``mid_b`` from ``low``, none ``mid_a`` from ``mid_b``.
A misclassified image and a defect-free one (no score) must not count.
"""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pixel_evidence import metrics
from pixel_evidence.dashboard.cd_diagram import cd_figure, cd_figure_size, cd_numbers, cd_png, cd_svg
from pixel_evidence.dashboard.export import table_csv
from pixel_evidence.metrics.significance import compare_over_seeds

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

SEEDS, N_IMAGES = (1, 2, 3), 20
METHODS = ("top", "mid_a", "mid_b", "low")
# a label that is markup, a formula start and mathematics at once: it must stay text
LABELS = {"top": "Top", "mid_a": "Mid A", "mid_b": '<b>Mid & "B"</b> $x$', "low": "=Low"}
RANKS = {"top": 1.0, "mid_a": 2.5, "mid_b": 2.5, "low": 4.0}  # by hand, see the module docstring
CD = 2.569 * math.sqrt(4 * 5 / (6 * 60))  # Demšar's q_0.05 for k = 4, three decimals
CD_ROUNDING = 0.0005 * math.sqrt(4 * 5 / (6 * 60))  # the table's q is rounded to 0.0005
BARS = [("mid_a", "mid_b")]
SEEDS_SEPARATING_NEXT = {"top": 3, "mid_a": 0, "mid_b": 3}
WAIT_S = 300  # a cap, not an expectation


def planted() -> pd.DataFrame:
    rows = []
    for seed in SEEDS:
        images = [(f"crack-{i:03d}", "crack", True) for i in range(N_IMAGES)]
        images += [("crack-bad", "crack", False), ("good-000", "good", True)]
        for i, (image_id, cls, correct) in enumerate(images):
            turn = (0.5, 0.4) if i % 2 == 0 else (0.4, 0.5)
            # the misclassified image reverses the order: counted, it would move every rank
            scores = dict(zip(METHODS, (0.9, *turn, 0.1) if correct else (0.1, 0.4, 0.5, 0.9)))
            for method in METHODS:
                score = np.nan if cls == "good" else scores[method]
                rows.append({"seed": seed, "split": "test", "image_id": image_id, "class": cls,
                             "predicted": cls if correct else "good", "correct": correct, "target": cls,
                             "method": method, "k": 0 if cls == "good" else 10, "n": 1000, "tko": score,
                             "chance": np.nan if cls == "good" else 0.01})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def result():
    return compare_over_seeds(planted(), score="tko")


def test_the_comparison_is_the_planted_one(result):
    pooled = result.pooled
    assert pooled.n_blocks == len(SEEDS) * N_IMAGES
    assert dict(zip(pooled.ranks["method"], pooled.ranks["average_rank"])) == pytest.approx(RANKS)
    assert pooled.critical_difference == pytest.approx(CD, abs=CD_ROUNDING)
    assert pooled.cd_groups() == BARS


def test_the_drawing_has_the_comparisons_ranks_bars_and_cd(result):
    pooled = result.pooled
    fig = cd_figure(pooled, LABELS, "planted")
    ax = fig.axes[0]
    bars = [line.get_xdata() for line in ax.lines if line.get_linewidth() == 4]
    # each bar reaches 0.04 past its first and last method's average rank
    assert [tuple(x) for x in bars] == [pytest.approx((RANKS["mid_a"] - 0.04, RANKS["mid_b"] + 0.04))]
    scale = [line.get_xdata() for line in ax.lines if line.get_linewidth() == 2]
    assert [tuple(x) for x in scale] == [pytest.approx((1, 1 + pooled.critical_difference))]
    texts = {t.get_text() for t in ax.texts}
    assert {f"{LABELS[m]} ({RANKS[m]:.2f})" for m in METHODS} <= texts
    assert f"CD = {pooled.critical_difference:.3f}" in texts
    # every method's line leaves the axis at its average rank
    starts = sorted(line.get_xdata()[0] for line in ax.lines if len(line.get_xdata()) == 3)
    assert starts == pytest.approx(sorted(RANKS.values()))
    words = " ".join(t.get_text() for t in fig.texts)
    assert "N = 60 blocks" in words and "alpha = 0.05" in words and "joined by a bar" in words


def test_the_svg_parses_and_names_every_method(result):
    svg = cd_svg(result.pooled, LABELS, "planted")
    root = ET.fromstring(svg.encode("utf-8"))
    texts = "\n".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for method in METHODS:
        assert f"{LABELS[method]} ({RANKS[method]:.2f})" in texts
    assert "<b>" not in svg  # the label's markup is escaped text, not elements


def test_the_png_decodes_at_the_figures_size(result):
    width_in, height_in = cd_figure_size(result.pooled, LABELS)
    image = Image.open(io.BytesIO(cd_png(result.pooled, LABELS, "planted", dpi=100)))
    image.load()
    assert image.format == "PNG"
    assert image.size == (round(width_in * 100), round(height_in * 100))


def test_the_csv_is_the_cd_table_with_its_context(result):
    numbers = cd_numbers(result, LABELS, score="tko", split="test")
    back = pd.read_csv(io.BytesIO(table_csv(numbers).getvalue()), dtype={"groups": str}, keep_default_na=False,
                       na_values=[""])
    expected = result.pooled.cd_table()
    assert list(back["method"]) == list(expected["method"])
    assert back["average_rank"].to_numpy() == pytest.approx(expected["average_rank"].to_numpy())
    assert back["critical_difference"].to_numpy() == pytest.approx(expected["critical_difference"].to_numpy())
    assert list(back["groups"].fillna("")) == list(expected["groups"])
    assert list(back["groups"].fillna("")) == ["", "1", "1", ""]  # the one bar, by hand
    assert set(back["score"]) == {"tko"} and set(back["split"]) == {"test"}
    assert set(back["n_blocks"]) == {60} and set(back["n_seeds"]) == {3}
    assert (back["label"] == back["method"].map(LABELS).map(lambda s: "'" + s if s.startswith("=") else s)).all()
    assert back["friedman_p"].iloc[0] == pytest.approx(result.pooled.friedman_p)
    separated = dict(zip(back["method"], back["seeds_separating_next"]))
    assert {m: separated[m] for m in SEEDS_SEPARATING_NEXT} == SEEDS_SEPARATING_NEXT
    assert math.isnan(separated["low"])


# ----------------------------------------------------------------------------- the section


def _section(tmp_path: Path):
    from pixel_evidence.dashboard.catalogue import Catalogue
    from pixel_evidence.dashboard.state import DashboardState
    from pixel_evidence.dashboard.summary import ResultsStore
    from pixel_evidence.dashboard.summary.critical_difference import CriticalDifferenceSection

    out = tmp_path / "models" / "results"
    out.mkdir(parents=True)
    tko = planted()
    tko.to_csv(out / "tko_table.csv", index=False)
    metrics.win_rates(tko).to_csv(out / "win_rates.csv", index=False)  # as evaluate writes it
    images = {("test", "crack"): tuple(tko["image_id"].unique()[:2]), ("train", "good"): ("good-train",)}
    catalogue = Catalogue(seeds=SEEDS, classes=("good", "crack"), images=images,
                          image_home={i: k for k, ids in images.items() for i in ids}, method_labels=LABELS,
                          default_methods=METHODS)
    engine = SimpleNamespace(catalogue=SimpleNamespace(data_root=Path("/data/planted")),
                             pool=SimpleNamespace(models_dir=tmp_path / "models", meta={s: {} for s in SEEDS}))
    store = ResultsStore(DashboardState(catalogue), engine)
    return store, CriticalDifferenceSection(store)


def _words(section) -> str:
    out, queue = [], list(section._column.objects)
    while queue:
        o = queue.pop(0)
        if isinstance(getattr(o, "object", None), str):
            out.append(o.object)
        queue += list(getattr(o, "objects", []))
    return "\n".join(out)


def test_the_section_draws_the_planted_comparison_and_keeps_it(tmp_path):
    import panel as pn

    store, section = _section(tmp_path)
    assert section.drawn.result(timeout=WAIT_S)
    shown = section.shown
    assert shown.result.pooled.cd_groups() == BARS
    assert dict(zip(shown.result.pooled.ranks["method"], shown.result.pooled.ranks["average_rank"])) \
        == pytest.approx(RANKS)
    svgs = [o for o in section._column.objects if isinstance(o, pn.pane.SVG)]
    assert len(svgs) == 1 and svgs[0].object.startswith("<svg")
    # the words escape the labels; the numbers behind the plots are the CSV's
    words = _words(section)
    assert "&lt;b&gt;Mid &amp; &quot;B&quot;&lt;/b&gt;" in words and "<b>Mid" not in words
    assert "joined by a bar are not significantly different" in words
    (title, table), = store.tables["cd"]
    assert "4 methods" in title
    pd.testing.assert_frame_equal(table, shown.numbers)
    assert section._downloads["csv"].filename == "pixel-evidence_cd_study_tko_test.csv"

    # no train rows: one line, no diagram, the downloads off
    store.state.split = "train"
    assert section.drawn.result(timeout=WAIT_S)
    assert section.shown is None and "No train-split rows in the evaluation results" in _words(section)
    assert all(button.disabled for button in section._downloads.values())
    # back to test: the kept answer, not a new one
    store.state.split = "test"
    assert section.drawn.result(timeout=WAIT_S)
    assert section.shown is shown
    # no sweep store here: the whole field says so
    section._set.value = "field"
    assert section.drawn.result(timeout=WAIT_S)
    assert section.shown is None and "No sweep results in" in _words(section)
