"""``benchmarks.ig_table_change``: two main tables compared, on hand-made tables whose flips,
win rates and gaps are counted here by hand."""

from __future__ import annotations

import math

import pandas as pd

from benchmarks.ig_table_change import compare

METHODS = ("gradcam", "saliency", "ig")


def _table(tkos: dict[tuple[str, str], tuple[float, float, float]], gaps: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Rows of seed 42 for each (split, image) -> TKO of (gradcam, saliency, ig); win shares
    by the one tie rule (a tie shares the win)."""
    rows = []
    for (split, image), scores in tkos.items():
        best = max(scores)
        winners = sum(s == best for s in scores)
        for method, tko in zip(METHODS, scores):
            rows.append({"seed": 42, "split": split, "image_id": image, "class": "cut", "correct": True,
                         "method": method, "tko": tko, "win_share": (tko == best) / winners,
                         "ig_relative_delta": gaps[(split, image)] if method == "ig" else math.nan})
    return pd.DataFrame(rows)


def test_flips_win_rates_and_gaps_per_split():
    before = {("test", "a"): (0.1, 0.2, 0.3), ("test", "b"): (0.1, 0.2, 0.3), ("test", "c"): (0.1, 0.2, 0.2),
              ("train", "d"): (0.5, 0.2, 0.3)}
    after = {("test", "a"): (0.1, 0.2, 0.3),   # unchanged
             ("test", "b"): (0.1, 0.4, 0.3),   # the sole winner changes: ig -> saliency
             ("test", "c"): (0.1, 0.2, 0.25),  # a tie broken: saliency+ig -> ig
             ("train", "d"): (0.5, 0.2, 0.3)}
    old_gaps = {("test", "a"): 0.2, ("test", "b"): 0.03, ("test", "c"): 0.1, ("train", "d"): 0.5}
    new_gaps = {("test", "a"): 0.02, ("test", "b"): 0.005, ("test", "c"): 0.04, ("train", "d"): 0.01}
    report = compare(_table(before, old_gaps), _table(after, new_gaps))
    assert ("test: per-image winners (rankable images) 2 of 3 flip (1 a change of the sole winner, "
            "1 a tie made or broken)") in report
    assert "train: per-image winners (rankable images) 0 of 1 flip" in report
    # test win rates: before ig 1 + 1 + 1/2, saliency 1/2; after ig 1 + 0 + 1, saliency 1 (over 3 images)
    assert f"| test | ig | {2.5 / 3:.3f} | {2 / 3:.3f} | {2 / 3 - 2.5 / 3:+.3f} |" in report
    assert f"| test | saliency | {0.5 / 3:.3f} | {1 / 3:.3f} | {1 / 3 - 0.5 / 3:+.3f} |" in report
    assert "| train | gradcam | 1.000 | 1.000 | +0.000 |" in report
    # IG's gaps of the test split: medians 0.1 and 0.02; shares above 1% and 5%
    assert "| before | test | 3 | 0.1000 |" in report and "| after | test | 3 | 0.0200 |" in report
    assert report.split("| before | test | 3 | 0.1000 |")[1].splitlines()[0].endswith("| 100% | 67% |")
    assert report.split("| after | test | 3 | 0.0200 |")[1].splitlines()[0].endswith("| 67% | 0% |")
    # IG's TKO moved on c only (0.2 -> 0.25): median 0, max 0.05
    assert "test: IG's TKO, after minus before: |change| median 0.0000, p90 0.0400, max 0.0500 over 3 images." in report
