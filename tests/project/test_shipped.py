"""The shipped default: ``load_engine()`` on the built-in data and ``pretrained_models/``,
checked against the tables ``pixel-evidence evaluate`` recorded for the same models, and the
numbers of the docs' results pages (``docs/generate.py``) recomputed by hand from those tables.

The built-in data is generated into the user cache on first use (``PIXEL_EVIDENCE_CACHE``,
see ``pixel_evidence.data.synthetic.default_data_root``) and reused afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from docs import generate
from pixel_evidence.choices import EVALUATE_IG_TOLERANCE, IG_MAX_STEPS, ig_params
from pixel_evidence.data import dataset_fingerprint
from pixel_evidence.data.synthetic import default_data_root
from pixel_evidence.engine.explain import load_engine
from pixel_evidence.results import ig_columns
from tests.significance_checks import assert_ranked_as_pandas

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "pretrained_models"
RESULTS = SHIPPED / "results"
LABELS = {"Integrated Gradients": "ig", "Saliency": "saliency", "Grad-CAM": "gradcam"}

# Rounding allowance for a map recomputed here against the same map computed by the evaluation
# (another batch size, possibly another machine): the same float32 network, so the two differ
# only by summation order, a few hundred ulps of the largest terms (IG's sum of at most a few
# hundred steps, each a forward and backward through the network) -- far below 1e-4 of the
# map's maximum. IG's refinement stops where a gap falls under the tolerance; rounding that
# small could change the steps it used only if a gap sat within about 1e-6 of the tolerance.
MAP_ROUNDING = 1e-4


@pytest.fixture(scope="module")
def shipped():
    # the evaluation's Integrated Gradients (to a tolerance), as the tables were made with it;
    # generates the built-in set into the user cache if missing
    engine = load_engine(device="cpu", method_params={"ig": ig_params(25, EVALUATE_IG_TOLERANCE, IG_MAX_STEPS)})
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(RESULTS / "tko_table.csv")


def test_the_default_engine_reads_the_data_the_shipped_models_were_trained_on(shipped):
    assert shipped.catalogue.data_root == default_data_root()
    assert shipped.pool.seeds == list(range(42, 52))
    # every seed recorded a fingerprint of the images and masks it was trained and tested on
    fingerprint = dataset_fingerprint(shipped.catalogue.data_root, shipped.catalogue.samples)
    assert {shipped.pool.meta[s]["dataset_fingerprint"] for s in shipped.pool.seeds} == {fingerprint}


def _allowance(values: np.ndarray, k: int) -> float:
    """How far a Top-K overlap can move when every pixel moves by MAP_ROUNDING of the
    maximum: only pixels that close to the K-th value can enter or leave the top K, each
    worth at most 1/K."""
    kth = np.sort(values.ravel())[::-1][k - 1]
    near = np.abs(values - kth) <= MAP_ROUNDING * values.max()
    return int(near.sum()) / k


def test_one_image_explained_as_the_shipped_table_records_it(shipped, table):
    # an image whose three TKOs are far apart, so the ranking is not decided by rounding
    seed, image_id = 42, "cut-049"
    ex = shipped.explain(seed, image_id, split="test")
    assert list(ex.methods) == ["gradcam", "saliency", "ig"]
    rows = table[(table.seed == seed) & (table.split == "test") & (table.image_id == image_id)].set_index("method")
    assert sorted(rows.index) == sorted(ex.methods)
    assert ex.true_class == "cut" and ex.predicted_class == "cut" == rows["predicted"].iloc[0]
    assert rows["correct"].all()
    size = shipped.pool.meta[seed]["image_size"]
    assert ex.n == size * size == rows["n"].iloc[0] and ex.k == int(ex.mask.sum()) == rows["k"].iloc[0]
    mask = ex.mask.ravel()
    allowances = {}
    for key, result in ex.methods.items():
        row, values = rows.loc[key], result.map.astype(np.float64)
        assert values.shape == (size, size) and (values >= 0).all() and values.max() > 0
        allowances[key] = _allowance(values, ex.k)
        assert abs(result.tko - row["tko"]) <= allowances[key], key
        assert result.chance == pytest.approx(row["chance"], rel=1e-12)
        # relevance mass and AUROC computed here from the engine's map, against the table's
        assert values.ravel()[mask].sum() / values.sum() == pytest.approx(row["relevance_mass"], rel=1e-3), key
        assert roc_auc_score(mask, values.ravel()) == pytest.approx(row["auroc"], abs=1e-3), key
    # IG refined as the table records: the same steps, and a gap that agrees to the rounding
    # of a completeness sum of a few hundred terms
    ig = ig_columns(ex.methods["ig"].extras)
    assert ig["ig_steps"] == rows.loc["ig", "ig_steps"] and bool(ig["ig_converged"]) == rows.loc["ig", "ig_converged"]
    assert ig["ig_relative_delta"] == pytest.approx(rows.loc["ig", "ig_relative_delta"], abs=1e-4)
    tkos = sorted(r.tko for r in ex.methods.values())
    assert min(b - a for a, b in zip(tkos, tkos[1:])) > 2 * max(allowances.values())
    assert {k: r.rank for k, r in ex.methods.items()} == rows["rank"].to_dict() == {"ig": 1, "gradcam": 2, "saliency": 3}


@pytest.mark.parametrize("seed", [42, 47])
def test_test_images_are_classified_as_the_shipped_table_records(shipped, table, seed):
    # the results page's "balanced accuracy 1.000 on the test split", checked cheaply: two test
    # images of every class, predicted here and recorded by the evaluation
    recorded = table[(table.seed == seed) & (table.split == "test")].drop_duplicates("image_id").set_index("image_id")
    test = [s for s in shipped.catalogue.samples if s.split == "test"]
    picked = [s for cls in shipped.catalogue.classes for s in [t for t in test if t.cls == cls][:2]]
    assert len(picked) == 2 * len(shipped.catalogue.classes) == 10
    for sample in picked:
        p = shipped.prediction(seed, sample.id)
        predicted = shipped.catalogue.classes[int(np.argmax(p.probabilities))]
        assert predicted == recorded.loc[sample.id, "predicted"] == sample.cls, sample.id
        assert recorded.loc[sample.id, "class"] == sample.cls


# ------------------------------------------------------------------ the docs' results, by hand


def _win_shares_by_hand(rows: pd.DataFrame, score: str) -> pd.Series:
    """Each row's share of its image's win: 1 / number of methods tied for the best ``score``
    of that (seed, split, image), 0 for the others."""
    best = rows.groupby(["seed", "split", "image_id"])[score].transform("max")
    winner = rows[score] == best
    return winner / winner.groupby([rows.seed, rows.split, rows.image_id]).transform("sum")


def _win_rates_by_hand(rows: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per seed: each image's win share averaged over its images; then mean and std (ddof 1)
    over seeds."""
    per_seed = _win_shares_by_hand(rows, score).groupby([rows.split, rows.method, rows.seed]).mean()
    return per_seed.groupby(level=["split", "method"]).agg(["mean", "std"])


def _same(generated: pd.Series | pd.DataFrame, by_hand: pd.Series | pd.DataFrame) -> None:
    """Equal up to summation order, with the same labels."""
    check = pd.testing.assert_series_equal if isinstance(by_hand, pd.Series) else pd.testing.assert_frame_equal
    check(generated, by_hand, check_names=False, check_exact=False, rtol=1e-9, atol=1e-12)


def test_results_table_is_recomputed_from_the_shipped_tables(table):
    counted = table[table["correct"] & table["tko"].notna()]  # correctly classified defect images
    assert counted.groupby(["seed", "split"]).image_id.nunique().loc[(42, "test")] == 64
    by_tko, by_auroc = _win_rates_by_hand(counted, "tko"), _win_rates_by_hand(counted, "auroc")
    scores = ["tko", "lift", "pointing", "relevance_mass", "auroc"]
    # mean over seeds of each seed's mean (seeds differ in how many images they classified right)
    means = counted.groupby(["split", "method", "seed"])[scores].mean().groupby(level=["split", "method"]).mean()
    generated = generate.main_table(table)
    assert len(generated) == 6
    for stat in ("mean", "std"):
        _same(generated[f"win_tko_{stat}"], by_tko[stat])
        _same(generated[f"win_auroc_{stat}"], by_auroc[stat])
    _same(generated[scores], means)
    # the headline figure, as the page and the README print it
    assert generate.mean_std(*generated.loc[("test", "ig"), ["win_tko_mean", "win_tko_std"]]) == "0.588 ± 0.055"


def test_mask_free_table_is_recomputed_from_the_shipped_tables():
    faithfulness = pd.read_csv(RESULTS / "faithfulness.csv")
    sanity = pd.read_csv(RESULTS / "sanity.csv")
    generated = generate.mask_free_table(faithfulness, sanity)
    assert sorted(generated.index) == sorted(LABELS.values())
    for method, rows in faithfulness.groupby("method"):
        for column in ("deletion_auc", "insertion_auc"):
            per_seed = [g[column].mean() for _, g in rows.groupby("seed")]
            assert generated.loc[method, f"{column}_mean"] == pytest.approx(np.mean(per_seed), rel=1e-12)
            assert generated.loc[method, f"{column}_std"] == pytest.approx(np.std(per_seed, ddof=1), rel=1e-9)
    final = sanity[sanity["final"]]
    for method, rows in final.groupby("method"):
        assert generated.loc[method, "checked"] == len(rows)
        assert generated.loc[method, "failed"] == int((rows["spearman"].abs() >= 0.5).sum()), method
        assert generated.loc[method, "spearman"] == pytest.approx(rows.spearman.mean(), rel=1e-12)
    # the verdicts the page words: IG fails almost everywhere, Saliency and Grad-CAM pass
    assert generated.loc["ig", "failed"] > generated.loc["ig", "checked"] / 2
    assert generated.loc[["saliency", "gradcam"], "failed"].eq(0).all()


@pytest.fixture(scope="module")
def sweep_counted() -> pd.DataFrame:
    """The shipped sweep store's correctly classified test images, every registered method on
    every shipped seed, with nothing held out."""
    from pixel_evidence.explainers import REGISTRY
    from pixel_evidence.results import read_store

    store = read_store(RESULTS / "sweep")
    assert store.problems == ()
    rows = store.tko[store.tko["split"] == "test"]
    assert set(rows["method"]) == set(REGISTRY)
    assert store.ig_refined  # IG to evaluate's tolerance, as the results page says and the costs assume
    return rows[rows["correct"].astype(bool) & rows["tko"].notna()]


@pytest.fixture(scope="module")
def whole_field():
    return generate.whole_field(RESULTS / "sweep", generate.Sources().benchmark)


def test_whole_field_table_is_recomputed_from_the_shipped_sweep(sweep_counted, whole_field):
    """The ranking of every method: win rates by hand from the shipped sweep store's rows
    (each image's win shared among tied methods), mean TKO per seed then over seeds, and each
    method's cost from the benchmark."""
    from pixel_evidence.sweep.costs import method_costs

    counted = sweep_counted
    by_tko = _win_rates_by_hand(counted.assign(split="test"), "tko").loc["test"]
    mean_tko = counted.groupby(["method", "seed"])["tko"].mean().groupby(level="method").mean()
    costs = method_costs(ig_refined=True).seconds
    ranking = whole_field.ranking
    assert list(ranking.index) == list(by_tko["mean"].sort_values(ascending=False, kind="stable").index)
    _same(ranking["mean"], by_tko["mean"].loc[ranking.index])
    _same(ranking["std"], by_tko["std"].loc[ranking.index])
    _same(ranking["tko"], mean_tko.loc[ranking.index])
    assert ranking["seconds"].to_dict() == {m: costs[m] for m in ranking.index}


def test_wins_per_seed_are_counted_from_the_shipped_sweep(sweep_counted, whole_field):
    """Images won per seed (a tie shared among the tied methods), its columns the methods that
    won anything, most wins first."""
    rows = sweep_counted
    won = _win_shares_by_hand(rows, "tko").groupby([rows.seed, rows.method]).sum().unstack(fill_value=0.0)
    totals = won.sum().sort_values(ascending=False, kind="stable")
    winners = list(totals.index[totals > 0])
    assert list(whole_field.wins.columns) == winners
    _same(whole_field.wins, won[winners])
    assert whole_field.images_per_seed.to_dict() == rows.groupby("seed").image_id.nunique().to_dict()


# The shipped significance tables against the same computation now: only the order of numpy's
# sums may differ (another CPU's vector width), ~1e-15 of each value; a p-value far in a tail,
# sf(z) at z ~ 30, moves by about z^2 times that relative change: still far below this.
SIGNIFICANCE_RTOL = 1e-9


def _same_significance(shipped: dict[str, pd.DataFrame] | None, fresh: dict[str, pd.DataFrame]) -> None:
    assert shipped is not None, "no shipped significance tables: run pixel-evidence significance --write-shipped"
    for name, table in fresh.items():
        pd.testing.assert_frame_equal(shipped[name], table, check_dtype=False, check_exact=False,
                                      rtol=SIGNIFICANCE_RTOL, atol=0, obj=name)


def test_shipped_significance_tables_are_recomputed_from_the_shipped_tables():
    """All ten seeds and both splits of the study's three methods, every score of the table."""
    from pixel_evidence.results import load_results
    from pixel_evidence.significance_tables import read_significance, results_significance_dir, significance_tables

    rows = load_results(RESULTS).tko
    fresh = significance_tables(rows)
    assert fresh.notes == ()
    shipped = read_significance(results_significance_dir(RESULTS))
    _same_significance(shipped, fresh.tables)
    friedman = shipped["friedman"]
    assert set(friedman["scope"]) == {*map(str, range(42, 52)), "pooled"}
    assert set(friedman["split"]) == {"test", "train"} and set(friedman["n_methods"]) == {3}
    assert set(friedman["score"]) == {"tko", "pointing", "relevance_mass", "auroc"}
    assert_ranked_as_pandas(rows, results_significance_dir(RESULTS), [])


def test_shipped_sweep_significance_tables_are_recomputed_from_the_shipped_store(sweep_counted):
    """Every category of the sweep store, all fourteen methods on the test split."""
    from pixel_evidence.results import read_store
    from pixel_evidence.significance_tables import read_significance, significance_tables, store_significance_dir

    store = read_store(RESULTS / "sweep")
    for category in store.categories:
        fresh = significance_tables(store.category(category))
        assert fresh.notes == ()
        shipped = read_significance(store_significance_dir(RESULTS / "sweep", category))
        _same_significance(shipped, fresh.tables)
        assert set(shipped["friedman"]["n_methods"]) == {sweep_counted["method"].nunique()}
        assert_ranked_as_pandas(store.category(category), store_significance_dir(RESULTS / "sweep", category), [])


def test_dissection_table_is_recomputed_from_the_shipped_tables(table):
    """Detector units per class and stage and the best last-block unit's IoU from the shipped
    dissection table; the three maps' summed top-K IoU from the shipped main table."""
    from pixel_evidence.dissection.table import read_dissection

    units = read_dissection(RESULTS / "dissection")
    units = units[units["split"] == "test"]
    generated = generate.dissection(RESULTS, table)
    for (stage, cls), rows in units.groupby(["stage", "class"]):
        per_seed = [int(g["detector"].sum()) for _, g in rows.groupby("seed")]
        assert generated.counts.loc[(stage, cls), "mean"] == pytest.approx(np.mean(per_seed))
        assert generated.counts.loc[(stage, cls), "std"] == pytest.approx(np.std(per_seed, ddof=1))
    last = units[units["stage"] == "encoder.8"]
    best = last.groupby(["class", "seed"])["iou"].max().groupby(level="class").agg(["mean", "std"])
    _same(generated.best_unit, best)
    # a map's top K holds K pixels and so does the mask: its TKO times K is the intersection
    rows = table[(table["split"] == "test") & (table["k"] > 0)]
    inter = rows["tko"] * rows["k"]
    sums = rows.assign(inter=inter, union=2 * rows["k"] - inter).groupby(["class", "method", "seed"])[
        ["inter", "union"]].sum()
    maps = (sums["inter"] / sums["union"]).groupby(level=["class", "method"]).agg(["mean", "std"])
    pd.testing.assert_frame_equal(generated.maps, maps, check_names=False, rtol=1e-6)
    per_seed = last.groupby(["seed", "unit"])["detector"].any().groupby(level="seed").sum()
    _same(generated.detecting.loc["encoder.8"], per_seed)
    assert generated.units == last["unit"].nunique() == 1280
