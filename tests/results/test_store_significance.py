"""store_significance on the shipped sweep store, its ranks recounted with pandas."""

from pathlib import Path

import pandas as pd
import pytest

from pixel_evidence.methods import DEFAULT_METHODS
from pixel_evidence.results.store_significance import store_significance
from pixel_evidence.results.sweep_store import read_store

SWEEP = Path(__file__).resolve().parents[2] / "pretrained_models" / "results" / "sweep"


def test_study_methods_ranked_over_the_shipped_sweep():
    methods = list(DEFAULT_METHODS)
    result = store_significance(SWEEP, methods=methods)
    rows = read_store(SWEEP).tko
    rows = rows[(rows["split"] == "test") & rows["correct"].eq(True) & rows["tko"].notna()
                & rows["method"].isin(methods)]
    # pandas' own average-tie ranking, rank 1 = highest TKO, per (seed, image)
    rank = rows.groupby(["seed", "class", "image_id"])["tko"].rank(ascending=False, method="average")
    expected = rank.groupby(rows["method"]).mean()
    got = result.pooled.ranks.set_index("method")["average_rank"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert sorted(result.per_seed) == sorted(rows["seed"].unique())
    assert result.pooled.n_blocks == rows.groupby(["seed", "class", "image_id"]).ngroups
    assert all(r.n_blocks * len(result.per_seed) == result.pooled.n_blocks for r in result.per_seed.values())
    with pytest.raises(ValueError, match="no rows"):
        store_significance(SWEEP, methods=["gradcam", "saliency", "not_a_method"])
