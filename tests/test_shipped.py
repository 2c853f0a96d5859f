"""The shipped default: ``load_engine()`` on the built-in data and ``pretrained_models/``,
checked against the tables ``pixel-evidence evaluate`` recorded for the same models, and the
README's results recomputed from those tables.

The built-in data is generated into the user cache on first use (``PIXEL_EVIDENCE_CACHE``,
see ``pixel_evidence.data.synthetic.default_data_root``) and reused afterwards.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pixel_evidence.choices import EVALUATE_IG_TOLERANCE, IG_MAX_STEPS, ig_params
from pixel_evidence.data import dataset_fingerprint
from pixel_evidence.data.synthetic import default_data_root
from pixel_evidence.engine.explain import load_engine
from pixel_evidence.results import ig_columns

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "pretrained_models"
RESULTS = SHIPPED / "results"
README = ROOT / "README.md"
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
    # the README's "balanced accuracy 1.000 on the test split", checked cheaply: two test
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


# ------------------------------------------------------------------ README results


def _readme_rows(header: str) -> list[list[str]]:
    """The cells of the README table whose header row starts with ``header``."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("*") for c in line.strip("|").split("|")])
    return rows


def _mean_std(cell: str) -> tuple[float, float]:
    mean, std = re.fullmatch(r"\**([\d.]+) ± ([\d.]+)\**", cell).groups()
    return float(mean), float(std)


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


def test_readme_results_table_is_recomputed_from_the_shipped_tables(table):
    counted = table[table["correct"] & table["tko"].notna()]  # correctly classified defect images
    assert counted.groupby(["seed", "split"]).image_id.nunique().loc[(42, "test")] == 64
    by_tko, by_auroc = _win_rates_by_hand(counted, "tko"), _win_rates_by_hand(counted, "auroc")
    scores = ["tko", "lift", "pointing", "relevance_mass", "auroc"]
    # mean over seeds of each seed's mean (seeds differ in how many images they classified right)
    means = counted.groupby(["split", "method", "seed"])[scores].mean().groupby(level=["split", "method"]).mean()
    readme = _readme_rows("| split | method | win rate by TKO")
    assert len(readme) == 6
    for split, label, win, tko, lift, pointing, mass, auroc, win_auroc in readme:
        key = (split, LABELS[label])
        assert _mean_std(win) == tuple(round(v, 3) for v in by_tko.loc[key]), key
        assert _mean_std(win_auroc) == tuple(round(v, 3) for v in by_auroc.loc[key]), key
        m = means.loc[key]
        assert [float(tko), float(lift.lstrip("×")), float(pointing), float(mass), float(auroc)] == [
            round(m.tko, 3), round(m.lift, 1), round(m.pointing, 3), round(m.relevance_mass, 3), round(m.auroc, 3)], key
    assert "**0.588 ± 0.055**" in README.read_text()  # the headline figure, as the README prints it
    assert f"Chance TKO (K/N) is {counted.chance.mean():.3f} on average" in README.read_text()


def test_readme_mask_free_table_is_recomputed_from_the_shipped_tables():
    faithfulness = pd.read_csv(RESULTS / "faithfulness.csv")
    sanity = pd.read_csv(RESULTS / "sanity.csv")
    per_seed = faithfulness.groupby(["method", "seed"])[["deletion_auc", "insertion_auc"]].mean()
    over_seeds = per_seed.groupby(level="method").agg(["mean", "std"])
    final = sanity[sanity["final"]]
    readme = _readme_rows("| method | deletion AUC")
    assert len(readme) == 3
    for label, deletion, insertion, check in readme:
        method = LABELS[label]
        for cell, column in ((deletion, "deletion_auc"), (insertion, "insertion_auc")):
            expected = over_seeds.loc[method, column]
            assert _mean_std(cell) == (round(expected["mean"], 3), round(expected["std"], 3)), (method, column)
        rows = final[final.method == method]
        verdict, count, total = re.match(r"\**(passes|fails) on (\d+) of (\d+)", check).groups()
        failed = int((~rows["passed"]).sum())
        assert int(total) == len(rows) and int(count) == (failed if verdict == "fails" else len(rows) - failed)
        assert f"{rows.spearman.mean():.2f}" in check


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
    assert store.ig_refined  # IG to evaluate's tolerance, as the README says and the costs assume
    return rows[rows["correct"].astype(bool) & rows["tko"].notna()]


def _sweep_labels() -> dict[str, str]:
    from pixel_evidence.explainers import REGISTRY

    return {cls.label: key for key, cls in REGISTRY.items()}


def test_readme_whole_field_table_is_recomputed_from_the_shipped_sweep(sweep_counted):
    """The README's ranking of every method: win rates by hand from the shipped sweep store's
    rows (each image's win shared among tied methods), mean TKO per seed then over seeds, and
    each method's cost from the benchmark."""
    from pixel_evidence.sweep.costs import method_costs

    counted = sweep_counted
    by_tko = _win_rates_by_hand(counted.assign(split="test"), "tko").loc["test"]
    mean_tko = counted.groupby(["method", "seed"])["tko"].mean().groupby(level="method").mean()
    costs = method_costs(ig_refined=True).seconds
    labels = _sweep_labels()
    readme = _readme_rows("| method | win rate by TKO | mean TKO | seconds per image |")
    assert [labels[r[0]] for r in readme] == list(by_tko["mean"].sort_values(ascending=False, kind="stable").index)
    one_seed = counted["seed"].nunique() == 1
    for label, win, tko, seconds in readme:
        m = labels[label]
        expected = (f"{by_tko.loc[m, 'mean']:.3f}" if one_seed
                    else f"{by_tko.loc[m, 'mean']:.3f} ± {by_tko.loc[m, 'std']:.3f}")
        assert (win, tko, seconds) == (expected, f"{mean_tko[m]:.3f}", f"{costs[m]:.2f}"), label


def test_readme_wins_per_seed_are_counted_from_the_shipped_sweep(sweep_counted):
    """The README's images won per seed (a tie shared among the tied methods), its columns the
    methods that won anything, most wins first, and the smoothed gradients' share it quotes."""
    rows = sweep_counted
    won = _win_shares_by_hand(rows, "tko").groupby([rows.seed, rows.method]).sum().unstack(fill_value=0.0)
    totals = won.sum().sort_values(ascending=False, kind="stable")
    winners = list(totals.index[totals > 0])

    labels = _sweep_labels()
    header = next(line for line in README.read_text().splitlines() if line.startswith("| seed | SmoothGrad"))
    listed = [labels[c.strip()] for c in header.strip("|").split("|")[1:]]
    assert listed == winners
    none_won = ["none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][len(labels) - len(winners)]
    text = " ".join(README.read_text().split())
    assert f"the {none_won} methods not listed won none on any seed" in text

    readme = _readme_rows(header)
    assert [int(r[0]) for r in readme] == sorted(won.index)
    for seed, *cells in readme:
        expected = [f"{won.loc[int(seed), m]:g}" if won.loc[int(seed), m] == round(won.loc[int(seed), m])
                    else f"{won.loc[int(seed), m]:.1f}" for m in winners]
        assert cells == expected, seed

    smoothed = (won["smoothgrad"] + won["smoothgrad_ig"]) / rows.groupby("seed").image_id.nunique()
    assert f"together take {100 * smoothed.min():.0f}–{100 * smoothed.max():.0f}% of each seed's images" in text


def test_readme_dissection_table_is_recomputed_from_the_shipped_tables(table):
    """Detector units per class and stage and the best last-block unit's IoU from the shipped
    dissection table; the three maps' summed top-K IoU from the shipped main table."""
    from pixel_evidence.dissection.table import detector_counts, read_dissection

    units = read_dissection(RESULTS / "dissection")
    units = units[units["split"] == "test"]
    counts = detector_counts(units).set_index(["stage", "class"])
    best = units[units["stage"] == "encoder.8"].groupby(["class", "seed"])["iou"].max()
    best = best.groupby(level="class").agg(["mean", "std"])
    rows = table[(table["split"] == "test") & (table["k"] > 0)]
    inter = rows["iou"] * 2 * rows["k"] / (1 + rows["iou"])  # |TopK| = |S| = K: union = 2K - intersection
    sums = rows.assign(inter=inter, union=2 * rows["k"] - inter).groupby(["class", "method", "seed"])[
        ["inter", "union"]].sum()
    maps = (sums["inter"] / sums["union"]).groupby(level=["class", "method"]).agg(["mean", "std"])

    def count(stage, cls):
        mean, std = counts.loc[(stage, cls), ["mean", "std"]]
        return f"{mean:.0f}" if std == 0 and mean == round(mean) else f"{mean:.1f} ± {std:.1f}"

    readme = _readme_rows("| class | detectors in `encoder.5`")
    assert [r[0] for r in readme] == sorted(units["class"].unique())
    for cls, e5, e8, best_cell, *by_method in readme:
        assert [e5, e8] == [count("encoder.5", cls), count("encoder.8", cls)], cls
        assert _mean_std(best_cell) == tuple(round(v, 3) for v in best.loc[cls]), cls
        for cell, method in zip(by_method, ("gradcam", "saliency", "ig")):
            assert _mean_std(cell) == tuple(round(v, 3) for v in maps.loc[(cls, method)]), (cls, method)
    per_seed = units[units["stage"] == "encoder.8"].groupby(["seed", "unit"])["detector"].any().groupby(level="seed").sum()
    text = " ".join(README.read_text().split())
    assert f"Of the last block's 1280 units, {per_seed.mean():.1f} ± {per_seed.std():.1f} per seed" in text
