"""The stochastic-noise study in the dashboard: the per-image "tie within noise" and the summary's robust wins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pixel_evidence.dashboard.catalogue import Catalogue
from pixel_evidence.dashboard.image_html import verdict_html
from pixel_evidence.dashboard.summary.noise import counts_table, wins_table
from pixel_evidence.engine.explanation import Explanation, MethodResult
from pixel_evidence.methods import METHODS
from pixel_evidence.results.noise_study import noise_dir, read_study, write_study


def explanation(tkos: dict[str, float]) -> Explanation:
    """A 4 x 4 explanation whose methods score ``tkos``; the best (exact ties share) wins."""
    best = max(tkos.values())
    winners = [m for m, v in tkos.items() if v == best]
    results = {m: MethodResult(m, METHODS[m].label, np.zeros((4, 4), np.float32), {"tko": v}, 0.25, v / 0.25, 0.0,
                               1.0 if m in winners else 2.0, 1 / len(winners) if m in winners else 0.0)
               for m, v in tkos.items()}
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    return Explanation(42, "test", "crack-001", "crack", np.zeros((4, 4, 3), np.uint8), mask, None,
                       ("crack", "good"), np.array([0.9, 0.1], np.float32), "predicted", "crack", results, 4, 16)


def test_a_lead_inside_the_winners_noise_is_a_tie_within_noise():
    ex = explanation({"gradcam": 0.25, "rise": 0.30})
    html = verdict_html(ex, {"rise": 0.08}, 5)
    assert "pe-tie-noise" in html and "RISE" in html and "0.080" in html and "0.050" in html and "5 draws" in html
    assert "pe-tie-noise" not in verdict_html(ex, {"rise": 0.02}, 5)  # the lead beats the noise
    assert "pe-tie-noise" not in verdict_html(ex)  # no study: nothing said


def test_the_runner_ups_noise_counts_and_a_third_methods_does_not():
    ex = explanation({"gradcam": 0.40, "rise": 0.35, "saliency": 0.10})
    assert "pe-tie-noise" in verdict_html(ex, {"rise": 0.06}, 5)
    ex = explanation({"gradcam": 0.40, "saliency": 0.35, "rise": 0.10})
    assert "pe-tie-noise" not in verdict_html(ex, {"rise": 0.5}, 5)  # both leaders are deterministic


FIELD = pd.DataFrame(
    [("one", "gradcam", 0.5), ("one", "saliency", 0.2), ("one", "rise", 0.4),
     ("two", "gradcam", 0.1), ("two", "saliency", 0.3), ("two", "rise", 0.7)],
    columns=["image_id", "method", "tko"]).assign(correct=True)
DRAWS = {d: pd.DataFrame([("one", "rise", v1), ("two", "rise", v2)], columns=["image_id", "method", "tko"])
         .assign(correct=True) for d, (v1, v2) in {1: (0.45, 0.69), 2: (0.6, 0.71)}.items()}


def test_summary_tables_say_how_many_wins_are_robust(tmp_path):
    rise = METHODS["rise"].explainer().defaults
    write_study(tmp_path, FIELD, DRAWS, ["rise"], {"seed": 42, "split": "test", "params": {"rise": rise}})
    study = read_study(tmp_path)
    wins = wins_table(study.summary, lambda m: METHODS[m].label).set_index("Method")
    # one: Grad-CAM wins draws 0 and 1, RISE draw 2 -> not robust; two: RISE every draw -> robust
    assert wins.at["Grad-CAM", "wins (draw 0)"] == "1" and wins.at["Grad-CAM", "robust wins"] == "0"
    assert wins.at["RISE", "wins (draw 0)"] == "1" and wins.at["RISE", "robust wins"] == "1"
    assert wins.at["Grad-CAM", "TKO spread median / p90 / max"] == "deterministic"
    assert wins.at["RISE", "TKO spread median / p90 / max"].endswith("/ 0.200")
    counts = pd.DataFrame({"method": "rise", "count": [500, 500, 1000, 1000], "image_id": ["one", "two"] * 2,
                           "pearson": [0.9, 0.95, 0.995, 0.999], "tko_0": 0.0, "tko_1": 0.0,
                           "tko_change": [0.02, 0.01, 0.0, 0.004], "seconds_per_map": 1.0})
    table = counts_table(counts, study.params, lambda m: METHODS[m].label).iloc[0]
    assert table["sample count"] == "n_masks = 1000" and table["stable from"] == "1000"
    assert table["Pearson of two draws at the default"] == "0.997"


def test_the_catalogue_applies_the_study_only_to_methods_with_its_settings(tiny_run, tmp_path):
    from pixel_evidence.engine.explain import ExplanationEngine

    root, models, *_ = tiny_run
    rise = METHODS["rise"].explainer().defaults
    write_study(tmp_path, FIELD, DRAWS, ["rise"], {"seed": 7, "split": "test", "params": {"rise": rise}})
    study = read_study(tmp_path)
    for params, applies in (({}, True), ({"rise": {"n_masks": 10}}, False)):
        engine = ExplanationEngine(root, models, device="cpu", method_params=params)
        try:
            catalogue = Catalogue.from_engine(engine, noise=study)
        finally:
            engine.close()
        assert ("rise" in catalogue.noise_methods) is applies
    assert study.covers(7, "test") and not study.covers(8, "test")
    assert study.spreads("one") == {"rise": pytest.approx(0.2)} and study.spreads("absent") == {}
    assert noise_dir(models) == models / "results" / "noise"
    assert not math.isnan(study.summary["methods"]["rise"]["median_spread"])
