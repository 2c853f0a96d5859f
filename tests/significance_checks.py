"""Shared by the significance tests: a planted table of scores, and the check that written
significance tables rank the methods as pandas does."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pytest

from pixel_evidence.significance_tables import CRITICAL_DIFFERENCE, POOLED, read_significance

PLANTED_IMAGES = 14  # above 13, scipy's Wilcoxon with tied differences takes its normal approximation


def planted_rows(seeds: Sequence[int] = (1, 2), splits: Sequence[str] = ("test", "train")) -> pd.DataFrame:
    """Rows in ``tko_table.csv``'s columns: methods a, b, c on 14 images per (seed, split); a beats
    b and c on every image, by a different margin on each (so the exact Wilcoxon test separates
    them on every seed), b and c draw lots (0.2 and 0.201 in a random order on each image), and
    a second score ``pointing`` repeats TKO's order. Image "x" of each unit is misclassified and
    image "g" defect-free (no scores): neither is a block."""
    rng = np.random.default_rng(0)
    rows = []

    def row(seed, split, image, cls, method, correct, tko, pointing):
        rows.append({"seed": seed, "split": split, "image_id": image, "class": cls,
                     "predicted": cls if correct else "good", "correct": correct, "method": method,
                     "tko": tko, "chance": 0.1, "pointing": pointing})

    for seed in seeds:
        for split in splits:
            for i in range(PLANTED_IMAGES):
                b, c = rng.permutation([0.2, 0.201])
                for method, tko in (("a", 0.6 + i / 100), ("b", b), ("c", c)):
                    row(seed, split, f"{i:02d}", "crack", method, True, tko, tko)
            for method in "abc":
                row(seed, split, "x", "crack", method, False, 1.0 if method == "c" else 0.0, 0.0)
                row(seed, split, "g", "good", method, True, np.nan, np.nan)
    return pd.DataFrame(rows)


def assert_ranked_as_pandas(table: pd.DataFrame, folder: Path, notes: Sequence[str]) -> None:
    """The significance tables in ``folder`` compare every seed of each split of ``table`` that
    has two or more counted images (correctly classified, with a TKO; the other seeds are named
    in ``notes``), and their pooled average ranks are pandas' own ranking of those rows (rank 1 =
    highest TKO, ties averaged)."""
    tests = read_significance(folder)
    assert tests is not None, f"no significance tables in {folder}"
    counted = table[table["correct"].astype(bool) & table["tko"].notna()]
    cd = tests[CRITICAL_DIFFERENCE.name]
    cd = cd[cd["score"] == "tko"]
    for split, rows in counted.groupby("split"):
        images = rows.groupby("seed")["image_id"].nunique()
        compared = sorted(str(s) for s in images.index[images >= 2])
        assert sorted(set(cd.loc[cd["split"] == split, "scope"]) - {POOLED}) == compared
        assert all(f"tko {split}: seed(s) {s} " in " ".join(notes) for s in images.index[images < 2])
        rows = rows[rows["seed"].astype(str).isin(compared)]
        rank = rows.groupby(["seed", "image_id"])["tko"].rank(ascending=False, method="average")
        pooled = cd[(cd["split"] == split) & (cd["scope"] == POOLED)]
        assert pooled.set_index("method")["average_rank"].to_dict() == pytest.approx(
            rank.groupby(rows["method"]).mean().to_dict())
