"""The summary tab's localisation scores, agreement, faithfulness and sanity panels.

Hand-made result folders (no models, no torch): every number on screen is compared with
an independent pandas computation, never with the engine function the view itself calls.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pixel_evidence import \
    metrics  # Bokeh's own DataFrame handling (Tabulator sources) trips a pandas deprecation: not ours to fix.

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

METHODS = ("gradcam", "saliency", "ig")
LABELS = {"gradcam": "Grad-CAM", "saliency": "Saliency", "ig": "Integrated Gradients"}
CLASSES = ("good", "crack", "hole")
SEEDS = (1, 2, 3)
IDS = {cls: [f"{cls}-{i:03d}" for i in range(4)] for cls in CLASSES}


def _catalogue():
    from pixel_evidence.dashboard.catalogue import Catalogue

    images = {("test", c): tuple(IDS[c]) for c in CLASSES}
    images[("train", "good")] = ("good-train-000",)
    home = {i: k for k, ids in images.items() for i in ids}
    return Catalogue(seeds=SEEDS, classes=CLASSES, images=images, image_home=home, method_labels=LABELS,
                     default_methods=METHODS)


def _tko_table(scores=("pointing", "auroc")) -> pd.DataFrame:
    """One row per (seed, image, method) on the test split; TKO, pointing and AUROC disagree
    on purpose so each score crowns other winners."""
    rng = np.random.default_rng(0)
    rows = []
    for seed, cls in itertools.product(SEEDS, CLASSES):
        for i, image_id in enumerate(IDS[cls]):
            correct = not (seed == 2 and i == 0)  # one misclassified image per class in seed 2
            for m in METHODS:
                defect = cls != "good"
                row = {"seed": seed, "split": "test", "image_id": image_id, "class": cls,
                       "predicted": cls if correct else "good", "correct": correct, "target": cls, "method": m,
                       "k": 10 if defect else 0, "n": 1000, "chance": 0.01 if defect else np.nan,
                       "tko": round(float(rng.random()), 2) if defect else np.nan}
                if "pointing" in scores:
                    row["pointing"] = float(rng.integers(0, 2)) if defect else np.nan
                if "auroc" in scores:
                    row["auroc"] = float(rng.random()) if defect else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


def _agreement() -> pd.DataFrame:
    """Seeds 1 and 2 only (the analyses cover fewer seeds than the main table)."""
    rng = np.random.default_rng(1)
    rows = []
    for seed, cls in itertools.product((1, 2), ("crack", "hole")):
        for image_id in IDS[cls]:
            for a, b in itertools.combinations(METHODS, 2):
                rows.append({"seed": seed, "split": "test", "image_id": image_id, "class": cls, "correct": True,
                             "method_a": a, "method_b": b, "pearson": rng.uniform(-1, 1),
                             "spearman": rng.uniform(-1, 1), "top_iou": rng.random()})
    return pd.DataFrame(rows)


def _faithfulness() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = [{"seed": 1, "split": "test", "image_id": image_id, "class": cls, "correct": True, "method": m,
             "start": "blur", "steps": 20, "deletion_auc": rng.random() * 0.5, "insertion_auc": 0.5 + rng.random() * 0.5}
            for cls in ("crack", "hole") for image_id in IDS[cls][:3] for m in METHODS]
    return pd.DataFrame(rows)


# passed flags of the final stage per method over two images: Grad-CAM passes both,
# Saliency fails both, IG fails one.
SANITY_PASSED = {"gradcam": (True, True), "saliency": (False, False), "ig": (True, False)}


def _sanity() -> pd.DataFrame:
    rows = []
    for j, image_id in enumerate(IDS["crack"][:2]):
        for m in METHODS:
            passed = SANITY_PASSED[m][j]
            for depth, layer in enumerate(("classifier", "encoder.1", "encoder.0")):
                final = depth == 2
                rho = (0.1 if passed else 0.8) if final else 0.9 - 0.1 * depth
                rows.append({"seed": 1, "split": "test", "image_id": image_id, "class": "crack", "correct": True,
                             "method": m, "depth": depth, "layer": layer, "spearman": rho + 0.01 * j,
                             "top_iou": rho / 2, "final": final, "passed": passed})
    return pd.DataFrame(rows)


def write_results(models: Path, *, scores=("pointing", "auroc"), analyses=("agreement", "faithfulness", "sanity"),
                  fraction: float | None = 0.2) -> Path:
    out = models / "results"
    (out / "per_seed").mkdir(parents=True, exist_ok=True)
    tko = _tko_table(scores)
    tko.to_csv(out / "tko_table.csv", index=False)
    metrics.win_rates(tko).to_csv(out / "win_rates.csv", index=False)  # as evaluate writes it
    makers = {"agreement": _agreement, "faithfulness": _faithfulness, "sanity": _sanity}
    for name in analyses:
        makers[name]().to_csv(out / f"{name}.csv", index=False)
    if "agreement" in analyses and fraction is not None:
        for seed in (1, 2):
            (out / "per_seed" / f"seed_{seed}_test.agreement.json").write_text(
                f'{{"analysis": "agreement", "settings": {{"fraction": {fraction}}}}}')
    return out


def make_view(models: Path):
    from pixel_evidence.dashboard.state import DashboardState
    from pixel_evidence.dashboard.summary import ResultsStore, SummaryView

    # the two parts of the engine the summary tab reads
    engine = SimpleNamespace(catalogue=SimpleNamespace(data_root=Path("/data/hazelnut")),
                             pool=SimpleNamespace(models_dir=models, meta={s: {} for s in SEEDS}))
    return SummaryView(ResultsStore(DashboardState(_catalogue()), engine))


@pytest.fixture
def view(tmp_path):
    write_results(tmp_path / "models")
    return make_view(tmp_path / "models")


SCORE_SHORT = {"tko": "TKO", "pointing": "pointing game", "auroc": "AUROC"}


def _elements(column, kind: str) -> list:
    """The HoloViews elements of type ``kind`` drawn in a view's section."""
    import panel as pn

    found, queue = [], list(column.objects)
    while queue:  # breadth first keeps the page order
        o = queue.pop(0)
        if isinstance(o, pn.pane.HoloViews):
            el = o.object
            found += [e for e in ([el] + list(getattr(el, "values", lambda: [])())) if type(e).__name__ == kind]
        queue += list(getattr(o, "objects", []))
    return found


def _html(column) -> str:
    """All HTML / Markdown text of a section."""
    out = []
    stack = list(column.objects)
    while stack:
        o = stack.pop(0)
        if isinstance(getattr(o, "object", None), str):
            out.append(o.object)
        stack += list(getattr(o, "objects", []))
    return "\n".join(out)


def _plotted_win_rates(view) -> pd.DataFrame:
    boxes = _elements(view.win._column, "BoxWhisker")
    assert boxes, "no win-rate plot"
    d = pd.concat([b.data for b in boxes], ignore_index=True)
    return d.set_index(["seed", "split", "method", "class"])["win_rate"].sort_index()


def _expected_win_rates(tko: pd.DataFrame, score: str) -> pd.Series:
    """Each method's share of the wins per seed, split and class and over all classes, worked
    out image by image: correctly classified images with a ``score`` only, and the methods
    tied for the best score split the image."""
    counted = tko[tko["correct"].eq(True) & tko[score].notna()]
    shares = []
    for (seed, split, cls, _image), scores in counted.groupby(["seed", "split", "class", "image_id"]):
        winners = set(scores.loc[scores[score] == scores[score].max(), "method"])
        shares += [{"seed": seed, "split": split, "class": cls, "method": method,
                    "share": 1 / len(winners) if method in winners else 0.0} for method in scores["method"]]
    shares = pd.DataFrame(shares)
    key = ["seed", "split", "method", "class"]
    per_class = shares.groupby(key)["share"].mean()
    overall = shares.assign(**{"class": "all classes"}).groupby(key)["share"].mean()
    return pd.concat([per_class, overall]).sort_index()


# ----------------------------------------------------------------------------- win rates by score


def test_score_selector_offers_the_scores_present(view):
    select = view.win._score_select
    assert "pe-score-select" in select.css_classes and select.label == "Winner decided by"
    assert list(select.options.values()) == ["tko", "pointing", "auroc"]  # no relevance mass in this table
    assert view.store.state.score == "tko" and select.value == "tko"
    text = _html(view.win._column)
    assert "maximum lies on the defect" in text and "separate defect pixels from background" in text
    assert "relevance mass" not in text.lower()


def test_switching_the_score_redraws_the_win_rates(view, tmp_path):
    tko = view.store.results.tko
    plotted = _plotted_win_rates(view)
    expected = _expected_win_rates(tko, "tko")
    pd.testing.assert_series_equal(plotted, expected, check_names=False)

    for score in ("pointing", "auroc", "tko"):
        view.win._score_select.value = score  # as the user does it
        assert view.store.state.score == score
        plotted = _plotted_win_rates(view)
        expected = _expected_win_rates(tko, score)
        pd.testing.assert_series_equal(plotted, expected, check_names=False)
        if score != "tko":
            # the test data make each score crown other winners: the plot really changed
            assert not np.allclose(plotted.values, _expected_win_rates(tko, "tko").values)
        title = _elements(view.win._column, "BoxWhisker")[0].opts.get().kwargs["title"]
        assert f"by {SCORE_SHORT[score]}, test split (3 seeds)" in title
    # the "numbers behind the plots" card follows the score
    view.store.state.score = "pointing"
    cards = [c.title for c in view.numbers._column.objects[1:]]
    assert "Win rates across seeds (winner by pointing game)" in cards


def test_a_score_the_results_lack_falls_back_to_tko_with_a_notice(view):
    view.store.state.score = "relevance_mass"  # e.g. from a shared link; this table has no such column
    assert view.store.state.score == "tko" and view.win._score_select.value == "tko"
    assert any("no relevance mass column" in n for n in view.store.state.notices)
    assert "by TKO, test split" in _elements(view.win._column, "BoxWhisker")[0].opts.get().kwargs["title"]


def test_misclassified_images_do_not_count_under_any_score(view):
    view.store.state.score = "pointing"
    d = pd.concat([b.data for b in _elements(view.win._column, "BoxWhisker")])
    seed2 = d[(d["seed"] == 2) & (d["class"] == "crack")]
    assert set(seed2["n_images"]) == {3}  # 4 crack images, one misclassified
    assert set(d.loc[d["seed"] == 1, "n_images"]) <= {4, 8}


# ----------------------------------------------------------------------------- agreement


def test_agreement_heatmap_shows_the_mean_of_each_pair(view, tmp_path):
    raw = pd.read_csv(tmp_path / "models" / "results" / "agreement.csv")
    assert "pe-agreement-summary" in view.agreement._column.css_classes
    for stat in ("spearman", "pearson", "top_iou"):
        view.agreement._stat_select.value = stat
        assert view.store.state.agreement == stat
        heat = _elements(view.agreement._column, "HeatMap")[0].data
        # independent: plain groupby over the raw rows, read in both orders
        expected = raw.groupby(["method_a", "method_b"])[stat].agg(["mean", "std"])
        assert len(heat) == 2 * len(expected) + len(METHODS)  # symmetric, plus a grey diagonal
        diagonal = heat[heat["Method"] == heat["compared with"]]
        assert diagonal["mean"].isna().all() and set(diagonal["text"]) == {"—"}
        for (a, b), row in expected.iterrows():
            for x, y in ((a, b), (b, a)):
                cell = heat[(heat["Method"] == LABELS[x]) & (heat["compared with"] == LABELS[y])]
                assert len(cell) == 1
                assert cell["mean"].iloc[0] == pytest.approx(row["mean"])
                assert cell["std"].iloc[0] == pytest.approx(row["std"])
                assert cell["text"].iloc[0] == f"{row['mean']:.2f} ± {row['std']:.2f}"
    text = _html(view.agreement._column)
    assert "16 images from seeds 1, 2" in text  # 8 defect images x 2 seeds
    assert "top-20% IoU" in text and "test split" in text
    assert set(view.agreement._stat_select.options) == {"Pearson r", "Spearman ρ", "top-20% IoU"}


def test_analyses_follow_the_split(view):
    view.store.state.split = "train"
    for section, name in ((view.agreement._column, "agreement"), (view.faithfulness._column, "faithfulness"),
                          (view.sanity._column, "sanity")):
        text = _html(section)
        assert f"No {name} rows for the train split; computed for the test split" in text
        assert not _elements(section, "HeatMap") and not _elements(section, "Bars")
    view.store.state.split = "test"
    assert _elements(view.agreement._column, "HeatMap")


# ----------------------------------------------------------------------------- faithfulness


def test_faithfulness_bars_are_mean_and_std_per_method(view, tmp_path):
    raw = pd.read_csv(tmp_path / "models" / "results" / "faithfulness.csv")
    assert "pe-faithfulness-summary" in view.faithfulness._column.css_classes
    bars = _elements(view.faithfulness._column, "Bars")
    errors = _elements(view.faithfulness._column, "ErrorBars")
    assert len(bars) == 2 and len(errors) == 2
    for bar, err, col in zip(bars, errors, ("deletion_auc", "insertion_auc")):
        expected = raw.groupby("method")[col].agg(["mean", "std"])
        got = bar.data.set_index("method")
        for m in METHODS:
            assert got.loc[m, "mean"] == pytest.approx(expected.loc[m, "mean"])
            assert got.loc[m, "std"] == pytest.approx(expected.loc[m, "std"])
        assert err.data.set_index("method")["std"].to_dict() == pytest.approx(expected["std"].to_dict())
    text = _html(view.faithfulness._column)
    assert "lower deletion AUC and higher insertion AUC = the map is more faithful to the model" in text
    assert "Start image: <b>blur</b>" in text and "6 images of seed 1" in text


# ----------------------------------------------------------------------------- sanity


def test_sanity_table_says_pass_or_fail_per_method(view, tmp_path):
    raw = pd.read_csv(tmp_path / "models" / "results" / "sanity.csv")
    assert "pe-sanity-summary" in view.sanity._column.css_classes
    text = _html(view.sanity._column)
    rows = {m: next(r for r in text.split("<tr>") if f"<b>{LABELS[m]}</b>" in r) for m in METHODS}
    for m, flags in SANITY_PASSED.items():
        n, ok = len(flags), sum(flags)
        if ok == n:
            assert f"passed on {ok} of {n} images" in rows[m] and "FAILED" not in rows[m]
        else:
            assert f"FAILED on {n - ok} of {n} images" in rows[m]
            assert "the map barely changes when the model's weights are random" in rows[m]
        final = raw[(raw["method"] == m) & (raw["final"])]["spearman"].mean()
        assert f">{final:.2f}</td>" in rows[m]
    assert "2 images of seed 1" in text


# ----------------------------------------------------------------------------- missing files


def test_missing_analyses_say_how_to_make_them(tmp_path):
    models = tmp_path / "models"
    write_results(models, scores=(), analyses=())
    view = make_view(models)
    command = f"pixel-evidence evaluate --metrics agreement faithfulness sanity --data /data/hazelnut --models {models}"
    for section, name in ((view.agreement._column, "agreement"), (view.faithfulness._column, "faithfulness"),
                          (view.sanity._column, "sanity")):
        text = _html(section)
        assert f"{name}.csv is missing" in text and command in text
    # only TKO can decide, and the page says how to get the other scores
    assert list(view.win._score_select.options.values()) == ["tko"]
    assert "--metrics pointing relevance_mass auroc" in _html(view.win._column)
    pd.testing.assert_series_equal(_plotted_win_rates(view), _expected_win_rates(view.store.results.tko, "tko"),
                                   check_names=False)


def test_reload_picks_up_a_new_analysis_file(tmp_path):
    models = tmp_path / "models"
    out = write_results(models, analyses=("sanity",))
    view = make_view(models)
    assert "agreement.csv is missing" in _html(view.agreement._column)
    _agreement().to_csv(out / "agreement.csv", index=False)
    view.store.load()
    assert _elements(view.agreement._column, "HeatMap")
    assert "top-share IoU" in _html(view.agreement._column)  # no sidecar says which share: not guessed


def test_nothing_is_written_by_the_widgets(view, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    view.win._score_select.value = "auroc"
    view.agreement._stat_select.value = "top_iou"
    view.store.state.split = "train"
    view.store.state.split = "test"
    view.store.state.seed = 2
    view.store.load()
    assert sorted(p for p in tmp_path.rglob("*")) == before
