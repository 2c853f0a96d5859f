"""The shipped stochastic-noise study is what its rows say: the spreads, winners per draw and robust
wins recomputed by hand from the whole-field store (draw 0) and the draw stores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pixel_evidence.results.noise_study import GAPS_FILE, IMAGES_FILE, SUMMARY_FILE, draw_store, read_study
from pixel_evidence.results.sweep_store import read_store
from pixel_evidence.run_folders import SHIPPED_MODELS

STUDY = SHIPPED_MODELS / "results" / "noise"


@pytest.fixture(scope="module")
def study():
    found = read_study(STUDY)
    assert found is not None, "no shipped noise study: run pixel-evidence noise --write-shipped"
    return found


@pytest.fixture(scope="module")
def scores(study) -> dict[int, pd.DataFrame]:
    """images x methods of TKO per draw: the field with the stochastic methods' draw-D rows."""
    s = study.summary
    field = read_store(SHIPPED_MODELS / "results" / "sweep").category(s["category"])
    field = field[(field["seed"] == s["seed"]) & (field["split"] == s["split"]) & field["correct"].astype(bool)]
    base = field.pivot(index="image_id", columns="method", values="tko").dropna()
    out = {0: base}
    for d in range(1, s["n_draws"]):
        rows = read_store(draw_store(STUDY, d)).category(s["category"])
        swapped = base.copy()
        for m in s["methods_studied"]:
            swapped[m] = rows[rows["method"] == m].set_index("image_id")["tko"].reindex(base.index)
        out[d] = swapped
    return out


def test_the_study_has_at_least_the_draws_it_names_and_every_image(study, scores):
    assert study.n_draws == len(scores) >= 3
    assert sorted(study.images["image_id"]) == sorted(scores[0].index)
    assert not any(frame.isna().any().any() for frame in scores.values())


def test_spreads_and_winners_match_the_rows(study, scores):
    methods = study.summary["methods_studied"]
    stacked = np.stack([scores[d][methods].to_numpy() for d in sorted(scores)])  # draws x images x methods
    spread = pd.DataFrame(stacked.max(0) - stacked.min(0), index=scores[0].index, columns=methods)
    gaps = pd.read_csv(STUDY / GAPS_FILE, dtype={"image_id": str})
    for _, row in gaps.iterrows():
        assert row["spread"] == pytest.approx(spread.at[row["image_id"], row["method"]], abs=1e-12)
    images = pd.read_csv(STUDY / IMAGES_FILE, dtype={"image_id": str}, keep_default_na=False).set_index("image_id")
    robust = 0
    for image_id in scores[0].index:
        per_draw = []
        for d in sorted(scores):
            row = scores[d].loc[image_id]
            per_draw.append("+".join(sorted(row.index[row == row.max()])))
        assert images.at[image_id, "winners"] == "|".join(per_draw)
        robust += len(set(per_draw)) == 1
    summary = json.loads((STUDY / SUMMARY_FILE).read_text())
    assert summary["robust_images"] == robust
    assert summary["winner_changes"] == len(scores[0]) - robust
