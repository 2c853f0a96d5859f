"""pixel_evidence.results: reading result tables and histories, and the top-K pixel picture."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pixel_evidence import metrics
from pixel_evidence.results import (PIXEL_FALSE_ALARM, PIXEL_HIT, PIXEL_MISS, PIXEL_OTHER, PIXEL_TIED_IN,
                                    PIXEL_TIED_OUT, agreement_stats, confusion_matrix, defect_rows, faithfulness_stats,
                                    history_bands, history_frame, load_results, localisation_win_rates, sanity_stats,
                                    stale_seeds, tko_stats, topk_pixels, win_rate_stats)

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- top-K picture


@pytest.mark.parametrize("levels", [None, 2, 5, 40])
@pytest.mark.parametrize("seed", range(6))
def test_topk_picture_agrees_with_metrics(seed, levels):
    rng = np.random.default_rng(seed)
    a = rng.random((24, 24))
    if levels:  # quantised maps create ties at the cut-off
        a = np.floor(a * levels)
    mask = np.zeros((24, 24), bool)
    y, x = rng.integers(0, 16, 2)
    mask[y:y + rng.integers(1, 8), x:x + rng.integers(1, 8)] = True
    p = topk_pixels(a, mask)
    assert p.k == mask.sum() and p.n == a.size
    assert p.tko == pytest.approx(metrics.top_k_overlap(a, mask), abs=1e-12)
    # every defect pixel is a hit, a miss or tied on the defect
    assert p.hits + p.misses + p.tied_in == p.k
    # the K slots are filled by pixels above the cut-off plus the tied share
    assert p.n_above + (p.tie_share * p.n_tied if p.n_tied else 0) == pytest.approx(p.k)
    assert p.hits + p.false_alarms == p.n_above
    assert np.count_nonzero(p.codes == PIXEL_HIT) == p.hits
    assert np.count_nonzero(p.codes == PIXEL_MISS) == p.misses
    assert np.count_nonzero(p.codes == PIXEL_FALSE_ALARM) == p.false_alarms
    assert np.count_nonzero(p.codes == PIXEL_TIED_IN) == p.tied_in
    assert np.count_nonzero(p.codes == PIXEL_TIED_OUT) == p.tied_out


def test_constant_map_is_all_tied_at_chance():
    mask = np.zeros((10, 10), bool)
    mask[:2, :5] = True
    p = topk_pixels(np.ones((10, 10)), mask)
    assert p.n_above == 0 and p.n_tied == 100
    assert p.tie_share == pytest.approx(0.1)
    assert p.tko == pytest.approx(0.1) == pytest.approx(metrics.chance_level(mask))
    assert set(np.unique(p.codes)) == {PIXEL_TIED_IN, PIXEL_TIED_OUT}


def test_exact_fit_at_cutoff_is_not_a_tie():
    a = np.zeros((4, 4))
    a[0, :3] = 5.0  # three pixels equal at the top, K = 3: they all fit
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True
    mask[1, 0] = True
    p = topk_pixels(a, mask)
    assert p.n_tied == 0 and p.n_above == 3
    assert (p.hits, p.misses, p.false_alarms) == (2, 1, 1)
    assert p.tko == pytest.approx(metrics.top_k_overlap(a, mask))


def test_pixel_order_does_not_matter():
    rng = np.random.default_rng(3)
    a = np.floor(rng.random((16, 16)) * 3)
    mask = rng.random((16, 16)) < 0.2
    perm = rng.permutation(a.size)
    p1 = topk_pixels(a, mask)
    p2 = topk_pixels(a.ravel()[perm].reshape(16, 16), mask.ravel()[perm].reshape(16, 16))
    assert (p1.hits, p1.misses, p1.false_alarms, p1.tied_in, p1.tied_out) == \
        (p2.hits, p2.misses, p2.false_alarms, p2.tied_in, p2.tied_out)


def test_empty_mask_has_no_topk():
    p = topk_pixels(np.random.default_rng(0).random((8, 8)), np.zeros((8, 8), bool))
    assert p.k == 0 and math.isnan(p.tko)
    assert (p.codes == PIXEL_OTHER).all()


def test_topk_rejects_bad_input():
    with pytest.raises(ValueError):
        topk_pixels(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError):
        topk_pixels(np.full((3, 3), np.nan), np.ones((3, 3)))


# ----------------------------------------------------------------------------- tables


def _table() -> pd.DataFrame:
    rows = []
    # two seeds, one split, two defect images and one good image, two methods
    for seed in (1, 2):
        for image_id, cls, predicted, tkos in (("a", "crack", "crack", (0.5, 0.25)),
                                               ("b", "hole", "hole" if seed == 1 else "crack", (0.1, 0.1)),
                                               ("g", "good", "good", (math.nan, math.nan))):
            for method, tko in zip(("gradcam", "saliency"), tkos):
                rows.append({"seed": seed, "split": "test", "image_id": image_id, "class": cls,
                             "predicted": predicted, "correct": predicted == cls, "target": predicted,
                             "method": method, "k": 0 if cls == "good" else 10, "n": 100, "tko": tko,
                             "chance": math.nan if cls == "good" else 0.1,
                             "lift": tko / 0.1 if cls != "good" else math.nan, "iou": math.nan, "rank": math.nan,
                             "win_share": math.nan, "ig_relative_delta": math.nan})
    return pd.DataFrame(rows)


def _write(tmp_path: Path, table: pd.DataFrame) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    table.to_csv(out / "tko_table.csv", index=False)
    metrics.win_rates(table).to_csv(out / "win_rates.csv", index=False)
    (out / "summary.json").write_text(json.dumps({"counted_images": "correctly classified defect images"}))
    (out / "per_seed").mkdir()
    for seed in (1, 2):  # as evaluate names them: seed_<n>_<split>.json, then analysis sidecars
        (out / "per_seed" / f"seed_{seed}_test.json").write_text(json.dumps({"weights_sha256": f"w{seed}"}))
        (out / "per_seed" / f"seed_{seed}_test.sanity.json").write_text(json.dumps({"analysis": "sanity"}))
    return out


def test_missing_results_are_not_an_error(tmp_path):
    res = load_results(tmp_path / "nothing")
    assert not res.available and res.problems == () and res.seeds == []


def test_load_results_roundtrip(tmp_path):
    out = _write(tmp_path, _table())
    res = load_results(out)
    assert res.available and res.problems == ()
    assert res.seeds == [1, 2] and res.splits == ["test"]
    assert res.tko["correct"].dtype == bool
    assert len(res.seed_rows(1)) == 6
    assert res.summary["counted_images"].startswith("correctly")
    assert res.provenance[2]["weights_sha256"] == "w2"


def test_analysis_settings_are_read_from_the_sidecars(tmp_path):
    out = _write(tmp_path, _table())
    pd.DataFrame({"seed": [1, 2], "split": ["test"] * 2, "image_id": ["a", "a"]}).to_csv(out / "agreement.csv",
                                                                                      index=False)
    for seed, fraction in ((1, 0.2), (2, 0.1)):
        (out / "per_seed" / f"seed_{seed}_test.agreement.json").write_text(
            json.dumps({"analysis": "agreement", "settings": {"fraction": fraction}}))
    (out / "per_seed" / "seed_3_test.agreement.json").write_text(json.dumps({"settings": {"fraction": 0.2}}))
    res = load_results(out)
    assert res.settings == {"agreement": [{"fraction": 0.2}, {"fraction": 0.1}]}  # distinct, sidecar order
    (out / "per_seed" / "seed_1_test.agreement.json").write_text("{cut off")
    res = load_results(out)
    assert res.settings == {"agreement": [{"fraction": 0.1}, {"fraction": 0.2}]}
    assert res.problems == (f"{out / 'per_seed' / 'seed_1_test.agreement.json'}: unreadable",)


def test_unreadable_results_are_reported(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "tko_table.csv").write_text("seed,split\n1,test\n")
    (out / "win_rates.csv").write_bytes(b"\xff\xfe\x00garbage")
    (out / "summary.json").write_text("{not json")
    res = load_results(out)
    assert not res.available
    assert len(res.problems) == 3
    assert any("missing columns" in p for p in res.problems)


def test_stale_seeds(tmp_path):
    res = load_results(_write(tmp_path, _table()))
    assert stale_seeds(res, {1: {"weights_sha256": "w1"}, 2: {"weights_sha256": "w2"}}) == []
    assert stale_seeds(res, {1: {"weights_sha256": "w1"}, 2: {"weights_sha256": "new"}}) == [2]
    assert stale_seeds(res, {1: {"weights_sha256": "w1"}}) == [2]


def test_confusion_matrix_counts_images_once():
    mat = confusion_matrix(_table(), 2, "test", ["crack", "good", "hole"])
    assert list(mat.index) == ["crack", "good", "hole"] == list(mat.columns)
    assert mat.loc["crack", "crack"] == 1 and mat.loc["hole", "crack"] == 1 and mat.loc["good", "good"] == 1
    assert mat.values.sum() == 3  # one count per image, not per method row


def test_defect_rows_add_chance_baseline():
    d = defect_rows(_table())
    assert d["tko"].notna().all()
    chance = d[d["method"] == "chance"]
    assert len(chance) == 4  # 2 seeds x 2 defect images
    assert (chance["tko"] == 0.1).all()
    stats = tko_stats(_table())
    row = stats[(stats["method"] == "gradcam")].iloc[0]
    assert row["n"] == 4 and row["mean_tko"] == pytest.approx(0.3) and row["mean_chance"] == pytest.approx(0.1)


def test_win_rate_stats_across_seeds():
    rates = metrics.win_rates(_table())
    stats = win_rate_stats(rates)
    overall = stats[(stats["class"] == "overall") & (stats["method"] == "gradcam")].iloc[0]
    # seed 1: gradcam wins "a", ties "b" -> 1.5 / 2; seed 2: only "a" counts (b misclassified) -> 1
    assert overall["mean"] == pytest.approx((0.75 + 1.0) / 2)
    assert overall["n_seeds"] == 2
    assert overall["std"] == pytest.approx(np.std([0.75, 1.0], ddof=1))


def test_history_bands():
    metas = {1: {"history": [{"epoch": 1, "train_loss": 1.0, "val_balanced_accuracy": 0.5},
                             {"epoch": 2, "train_loss": 0.5, "val_balanced_accuracy": 0.7}]},
             2: {"history": [{"epoch": 1, "train_loss": 3.0, "val_balanced_accuracy": 0.7},
                             {"epoch": 2, "train_loss": 0.5, "val_balanced_accuracy": None}]},
             3: {}}
    h = history_frame(metas)
    assert set(h["metric"]) == {"train_loss", "val_balanced_accuracy"}
    b = history_bands(h).set_index(["metric", "epoch"])
    assert b.loc[("train_loss", 1), "mean"] == pytest.approx(2.0)
    assert b.loc[("train_loss", 1), "std"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert b.loc[("train_loss", 2), "std"] == 0
    assert b.loc[("val_balanced_accuracy", 2), "n_seeds"] == 1  # a missing value is not counted
    assert b.loc[("val_balanced_accuracy", 2), "std"] == 0
    assert history_bands(history_frame({})).empty


def test_results_module_does_not_import_torch():
    code = "import sys, pixel_evidence.results; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_results_on_a_real_evaluation(tiny_run, tmp_path):
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.evaluate import evaluate

    root, models, *_ = tiny_run
    engine = ExplanationEngine(root, models, device="cpu", method_params={"ig": {"n_steps": 4}})
    try:
        evaluate(engine, tmp_path / "results", seeds=[7], progress=False)
    finally:
        engine.close()
    res = load_results(tmp_path / "results")
    assert res.available and res.problems == ()
    assert stale_seeds(res, engine.pool.meta) == []
    assert res.seeds == [7] and res.splits == ["train", "test"]
    mat = confusion_matrix(res.tko, 7, "test", engine.catalogue.classes)
    assert mat.values.sum() == len(engine.catalogue.image_ids("test"))
    assert set(tko_stats(res.tko)["method"]) == {"gradcam", "saliency", "ig", "chance"}
    assert not history_bands(history_frame(engine.pool.meta)).empty


def test_win_rates_under_another_score_split_ties():
    rows = []
    # image a: pointing ties (both hit) -> half a win each; image b: only saliency hits
    for image_id, hits in (("a", {"gradcam": 1.0, "saliency": 1.0}), ("b", {"gradcam": 0.0, "saliency": 1.0})):
        for m, p in hits.items():
            rows.append({"seed": 1, "split": "test", "image_id": image_id, "class": "crack", "correct": True,
                         "method": m, "tko": 0.5 if m == "gradcam" else 0.1, "pointing": p})
    table = pd.DataFrame(rows)
    by_pointing = localisation_win_rates(table, "pointing")
    overall = by_pointing[by_pointing["class"] == "overall"].set_index("method")["win_rate"]
    assert overall["saliency"] == pytest.approx(0.75) and overall["gradcam"] == pytest.approx(0.25)
    by_tko = localisation_win_rates(table, "tko")
    assert by_tko[by_tko["class"] == "overall"].set_index("method")["win_rate"]["gradcam"] == 1.0
    with pytest.raises(ValueError, match="unknown score"):
        localisation_win_rates(table, "iou_of_something")


def test_agreement_faithfulness_and_sanity_stats():
    agreement = pd.DataFrame({"seed": [1, 1, 2], "split": "test", "image_id": ["a", "b", "a"],
                              "method_a": "gradcam", "method_b": "ig", "pearson": [0.2, 0.4, 0.9],
                              "spearman": [0.1, 0.3, 0.5], "top_iou": [0.0, 0.5, 1.0]})
    row = agreement_stats(agreement).iloc[0]
    assert row["spearman_mean"] == pytest.approx(0.3) and row["spearman_std"] == pytest.approx(0.2)
    assert row["n_images"] == 3 and row["n_seeds"] == 2
    faith = pd.DataFrame({"seed": 1, "split": "test", "image_id": ["a", "b"], "method": "ig", "start": "black",
                          "deletion_auc": [0.1, 0.3], "insertion_auc": [0.8, 0.6]})
    row = faithfulness_stats(faith).iloc[0]
    assert row["deletion_auc_mean"] == pytest.approx(0.2) and row["insertion_auc_mean"] == pytest.approx(0.7)
    sanity = pd.DataFrame({"seed": 1, "split": "test", "image_id": ["a", "a", "b", "b"], "method": "ig",
                           "depth": [0, 1, 0, 1], "layer": ["classifier", "encoder.0"] * 2,
                           "spearman": [0.9, 0.2, 0.95, 0.7], "top_iou": [0.8, 0.1, 0.9, 0.6],
                           "final": [False, True, False, True], "passed": [True, True, False, False]})
    row = sanity_stats(sanity).iloc[0]
    assert (row["n_images"], row["n_passed"], row["pass_rate"]) == (2, 1, 0.5)
    assert row["final_spearman_mean"] == pytest.approx(0.45)
    assert sanity_stats(sanity.iloc[:0]).empty and agreement_stats(agreement.iloc[:0]).empty
