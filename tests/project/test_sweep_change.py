"""benchmarks/sweep_change on a planted change: two methods, two seeds, one method's TKO moved
on one image so that image's winner flips; every number of the record worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.sweep_change import compare_rows


def _rows(b_on_seed_1_image_y: float) -> pd.DataFrame:
    rows = []
    for seed in (1, 2):
        for image, tko_a, tko_b in (("x", 0.5, 0.2), ("y", 0.4, b_on_seed_1_image_y if seed == 1 else 0.1)):
            for method, tko in (("a", tko_a), ("b", tko_b)):
                rows.append({"category": "c", "seed": seed, "split": "test", "image_id": image, "class": "crack",
                             "correct": True, "method": method, "tko": tko})
    return pd.DataFrame(rows)


def test_a_planted_change_is_recorded_as_worked_out_by_hand():
    record = compare_rows(_rows(0.3), _rows(0.6), ["b"])
    assert record["images"] == 4 and record["seeds"] == [1, 2] and record["winner_flips"] == 1
    a, b = record["methods"]["a"], record["methods"]["b"]
    # before: a wins all four images; after: b wins seed 1's y, so a wins 1/2 and 1 of seeds 1 and 2
    assert a["win_rate_before"] == [1.0, 0.0] and b["win_rate_before"] == [0.0, 0.0]
    assert a["win_rate_after"][0] == pytest.approx(0.75) and b["win_rate_after"][0] == pytest.approx(0.25)
    assert b["win_rate_after"][1] == pytest.approx(pd.Series([0.5, 0.0]).std())
    # mean TKO per seed, then over seeds: b before (0.25 + 0.15) / 2, after (0.4 + 0.15) / 2
    assert b["mean_tko_before"] == pytest.approx(0.2) and b["mean_tko_after"] == pytest.approx(0.275)
    assert b["images_with_tko_change"] == 1 and b["max_abs_tko_change"] == pytest.approx(0.3)
    assert b["median_abs_tko_change"] == 0.0  # three of its four images did not move
    assert "images_with_tko_change" not in a  # only the recomputed method's maps can have moved
