"""The significance tables of a planted table: layout, values against scipy and pandas, the
seed counts of a planted separation, the files' round trip, and what is left out."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from pixel_evidence.significance_tables import (CRITICAL_DIFFERENCE, FRIEDMAN, PAIRWISE, POOLED, SIGNIFICANCE_TABLES,
                                                Significance, read_significance, significance_tables,
                                                write_significance)
from tests.significance_checks import PLANTED_IMAGES, assert_ranked_as_pandas, planted_rows


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return planted_rows()


@pytest.fixture(scope="module")
def result(rows) -> Significance:
    return significance_tables(rows)


@pytest.fixture(scope="module")
def tables(result) -> dict[str, pd.DataFrame]:
    assert result.notes == ()
    return result.tables


def test_one_row_per_score_split_and_scope_in_the_registered_columns(tables):
    for name, table in SIGNIFICANCE_TABLES.items():
        assert list(tables[name].columns) == list(table.columns)
    friedman = tables[FRIEDMAN.name]
    scopes = ["1", "2", POOLED]
    assert list(zip(friedman["score"], friedman["split"], friedman["scope"])) == [
        (score, split, scope) for score in ("tko", "pointing") for split in ("test", "train") for scope in scopes]
    assert list(friedman["n_blocks"]) == [PLANTED_IMAGES, PLANTED_IMAGES, 2 * PLANTED_IMAGES] * 4
    assert (tables[PAIRWISE.name].groupby(["score", "split", "scope"]).size() == 3).all()
    assert (tables[CRITICAL_DIFFERENCE.name].groupby(["score", "split", "scope"]).size() == 3).all()


def test_friedman_equals_scipy_on_the_pivoted_scores(rows, tables):
    counted = rows[rows["correct"] & rows["tko"].notna()]
    for (split, seed), unit in counted.groupby(["split", "seed"]):
        matrix = unit.pivot(index="image_id", columns="method", values="tko")
        expected = stats.friedmanchisquare(*(matrix[m] for m in "abc"))
        got = tables[FRIEDMAN.name].set_index(["score", "split", "scope"]).loc[("tko", split, str(seed))]
        assert got["friedman_statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert got["friedman_p"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_the_planted_order_and_bars(tables):
    cd = tables[CRITICAL_DIFFERENCE.name]
    pooled = cd[(cd["score"] == "tko") & (cd["split"] == "test") & (cd["scope"] == POOLED)].set_index("method")
    assert list(pooled.index)[0] == "a" and set(pooled.index) == {"a", "b", "c"}  # b, c: either order
    assert pooled.loc["a", "average_rank"] == 1.0
    # b and c split ranks 2 and 3 at random: about 2.5 each, well within the CD, so one bar joins them
    assert pooled.loc["a", "groups"] == "" and pooled.loc["b", "groups"] == pooled.loc["c", "groups"] == "1"


def test_pooled_rows_count_the_seeds_that_separate_a_pair(tables):
    pairs = tables[PAIRWISE.name]
    pooled = pairs[(pairs["scope"] == POOLED) & (pairs["score"] == "tko") & (pairs["split"] == "test")]
    by_pair = pooled.set_index(["method_a", "method_b"])
    # a > b on all 14 images of each seed, no two differences alike: exact two-sided Wilcoxon
    # p = 2 / 2^14, below 0.05 after Holm's factor of at most 3
    assert by_pair.loc[("a", "b"), "n_holm_significant"] == 2 == by_pair.loc[("a", "b"), "n_seeds"]
    per_seed = pairs[(pairs["scope"] != POOLED) & (pairs["score"] == "tko") & (pairs["split"] == "test")]
    a_b = per_seed[(per_seed["method_a"] == "a") & (per_seed["method_b"] == "b")]
    assert list(a_b["wilcoxon_p"]) == pytest.approx([2 / 2 ** PLANTED_IMAGES] * 2, rel=1e-12)
    assert per_seed["n_seeds"].isna().all()
    for (a, b), row in by_pair.iterrows():
        mine = per_seed[(per_seed["method_a"] == a) & (per_seed["method_b"] == b)]
        assert row["n_nemenyi_significant"] == mine["nemenyi_significant"].sum()
        assert row["n_holm_significant"] == mine["holm_significant"].sum()


def test_the_files_read_back_as_written_and_rank_as_pandas(rows, result, tables, tmp_path):
    written = write_significance(tmp_path, result)
    assert sorted(p.name for p in written) == sorted(t.file for t in SIGNIFICANCE_TABLES.values())
    back = read_significance(tmp_path)
    for name in SIGNIFICANCE_TABLES:
        pd.testing.assert_frame_equal(back[name], tables[name], check_dtype=False)
    assert not list(tmp_path.glob(".*.tmp"))  # each file was renamed into place
    assert_ranked_as_pandas(rows, tmp_path, result.notes)


def test_a_seed_with_too_few_images_is_left_out_and_said(rows):
    # seed 3 has a single correctly classified defect image on the test split
    lone = planted_rows(seeds=(3,), splits=("test",))
    lone = lone[lone["image_id"].isin(["00", "x", "g"])]
    result = significance_tables(pd.concat([rows, lone], ignore_index=True), scores=["tko"])
    assert result.notes == ("tko test: seed(s) 3 left out: fewer than two images that every method scored",)
    friedman = result.tables[FRIEDMAN.name]
    assert "3" not in set(friedman["scope"])
    assert friedman.set_index(["split", "scope"]).loc[("test", POOLED), "n_blocks"] == 2 * PLANTED_IMAGES


def test_two_methods_give_no_tables_and_remove_old_ones(rows, result, tmp_path):
    write_significance(tmp_path, result)
    two = significance_tables(rows[rows["method"] != "c"])
    assert two.empty and "2 method(s)" in two.notes[0]
    assert write_significance(tmp_path, two) == []
    assert read_significance(tmp_path) is None and not list(tmp_path.iterdir())
