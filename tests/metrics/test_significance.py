"""Tests for pixel_evidence.metrics.significance against Demšar (2006), scipy and hand-worked tables."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pixel_evidence.metrics import (MethodComparison, block_matrix, compare_methods, compare_over_seeds,
                                    critical_difference, holm_adjust, rank_biserial)

# ---------------------------------------------------------------------------
# Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7 (2006):
# AUC of four C4.5 variants on 14 data sets (Table 6), and the numbers the paper derives.
# ---------------------------------------------------------------------------

DEMSAR_METHODS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798],  # adult (sample)
    [0.599, 0.591, 0.590, 0.569],  # breast cancer
    [0.954, 0.971, 0.968, 0.967],  # breast cancer wisconsin
    [0.628, 0.661, 0.654, 0.657],  # cmc
    [0.882, 0.888, 0.886, 0.898],  # ionosphere
    [0.936, 0.931, 0.916, 0.931],  # iris
    [0.661, 0.668, 0.609, 0.685],  # liver disorders
    [0.583, 0.583, 0.563, 0.625],  # lung cancer
    [0.775, 0.838, 0.866, 0.875],  # lymphography
    [1.000, 1.000, 1.000, 1.000],  # mushroom
    [0.940, 0.962, 0.965, 0.962],  # primary tumor
    [0.619, 0.666, 0.614, 0.669],  # rheum
    [0.972, 0.981, 0.975, 0.975],  # voting
    [0.957, 0.978, 0.946, 0.970],  # wine
])


# The paper ranked unrounded AUCs: on voting its ranks put C4.5+cf ahead of C4.5+m+cf, which
# the rounded table prints as equal (0.975); without this the ranks would read 2.929 and 1.929.
DEMSAR_AS_RANKED = DEMSAR_AUC + np.where(np.arange(14)[:, None] == 12, [0, 0, 1e-5, 0], 0)


@pytest.fixture(scope="module")
def demsar() -> MethodComparison:
    return compare_methods(pd.DataFrame(DEMSAR_AS_RANKED, columns=DEMSAR_METHODS))


def test_demsar_average_ranks(demsar):
    ranks = dict(zip(demsar.ranks["method"], demsar.ranks["average_rank"]))
    assert [round(ranks[m], 3) for m in DEMSAR_METHODS] == [3.143, 2.000, 2.893, 1.964]
    assert list(demsar.ranks["method"]) == ["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]
    assert (demsar.n_blocks, demsar.n_methods) == (14, 4)


def test_demsar_friedman_statistic_and_its_tie_correction(demsar):
    n, k = 14, 4
    ranks = demsar.ranks["average_rank"].to_numpy()
    # the paper's chi^2_F and F_F use no tie correction: 9.28 and 3.69
    chi2_plain = 12 * n / (k * (k + 1)) * (np.sum(ranks ** 2) - k * (k + 1) ** 2 / 4)
    assert round(chi2_plain, 2) == 9.28
    assert round((n - 1) * chi2_plain / (n * (k - 1) - chi2_plain), 2) == 3.69
    # scipy divides by 1 - sum(t^3 - t) / (N k (k^2 - 1)) over the tied groups within blocks:
    # mushroom ties all four (t = 4), iris, lung cancer and primary tumor two each
    correction = 1 - (60 + 3 * 6) / (n * k * (k * k - 1))
    assert demsar.friedman_statistic == pytest.approx(chi2_plain / correction)
    assert demsar.friedman_p == pytest.approx(stats.chi2.sf(chi2_plain / correction, k - 1))
    chi2 = demsar.friedman_statistic
    assert demsar.iman_davenport_statistic == pytest.approx((n - 1) * chi2 / (n * (k - 1) - chi2))


def test_demsar_critical_difference_and_nemenyi(demsar):
    # the paper: CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25 at alpha 0.05, 2.291 * ... = 1.12 at 0.10
    assert round(demsar.critical_difference, 2) == 1.25
    assert round(critical_difference(4, 14, alpha=0.10), 2) == 1.12
    # no pair is 1.25 apart, so no pair differs at 0.05 and one bar joins all four
    assert not demsar.pairs["nemenyi_significant"].any()
    assert demsar.cd_groups() == [("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5")]
    # at 0.10 the paper separates C4.5 from C4.5+m (1.143 apart) and from C4.5+m+cf (1.179)
    at_10 = compare_methods(pd.DataFrame(DEMSAR_AS_RANKED, columns=DEMSAR_METHODS), alpha=0.10)
    separated = at_10.pairs.loc[at_10.pairs["nemenyi_significant"], ["method_a", "method_b"]]
    assert {frozenset(p) for p in separated.itertuples(index=False)} == {
        frozenset({"C4.5", "C4.5+m"}), frozenset({"C4.5", "C4.5+m+cf"})}


def test_demsar_wilcoxon_c45_against_c45m(demsar):
    # the paper's worked Wilcoxon test: zero differences (lung cancer, mushroom) split evenly,
    # R+ = 93 for C4.5+m, R- = 12 for C4.5, so T = min = 12
    pair = demsar.pairs.set_index(["method_a", "method_b"]).loc[("C4.5+m", "C4.5")]
    assert pair["wilcoxon_statistic"] == 12
    assert pair["rank_biserial"] == pytest.approx((93 - 12) / 105)


# ---------------------------------------------------------------------------
# A tidy table worked by hand: scores in eighths (exact in binary), methods a, b, c
# ---------------------------------------------------------------------------

EIGHTHS = {  # (seed, image) -> scores of a, b, c; higher is better
    (1, "0"): (4, 2, 1),  # ranks a 1, b 2, c 3
    (1, "1"): (2, 2, 3),  # c 1, a and b share 2 and 3: 2.5 each
    (1, "2"): (5, 1, 5),  # a and c share 1.5, b 3
    (1, "3"): (3, 3, 3),  # all 2
    (2, "0"): (1, 6, 3),  # b 1, c 2, a 3
    (2, "1"): (7, 6, 5),  # a 1, b 2, c 3
    (2, "2"): (3, 4, 3),  # b 1, a and c 2.5
    (2, "3"): (6, 1, 4),  # a 1, c 2, b 3
}


def tidy(scores: dict, *, split: str = "test") -> pd.DataFrame:
    rows = [{"seed": seed, "split": split, "class": "crack", "image_id": image, "method": method,
             "correct": True, "tko": value / 8}
            for (seed, image), values in scores.items() for method, value in zip("abc", values)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def hand_table() -> pd.DataFrame:
    table = tidy(EIGHTHS)
    defect_free = tidy({(1, "4"): (math.nan, math.nan, math.nan)})
    misclassified = tidy({(1, "5"): (0, 8, 4)}).assign(correct=False)
    return pd.concat([table, defect_free, misclassified], ignore_index=True)


def columns_of(scores: dict) -> list[list[float]]:
    """The scores of a, b, c as three columns, blocks in dict order."""
    return [[values[j] / 8 for values in scores.values()] for j in range(3)]


def test_average_ranks_share_ties_as_worked_by_hand(hand_table):
    result = compare_over_seeds(hand_table)
    expected = {1: {"a": 7 / 4, "b": 9.5 / 4, "c": 7.5 / 4},
                2: {"a": 7.5 / 4, "b": 7 / 4, "c": 9.5 / 4}}
    for seed, ranks in expected.items():
        got = result.per_seed[seed].ranks
        assert dict(zip(got["method"], got["average_rank"])) == pytest.approx(ranks)
    pooled = result.pooled.ranks
    assert list(pooled["method"]) == ["a", "b", "c"]
    assert list(pooled["average_rank"]) == pytest.approx([14.5 / 8, 16.5 / 8, 17 / 8])


def test_defect_free_and_misclassified_images_are_not_blocks(hand_table):
    result = compare_over_seeds(hand_table)
    assert result.pooled.n_blocks == 8
    assert [r.n_blocks for r in result.per_seed.values()] == [4, 4]
    counted = compare_over_seeds(hand_table, include_misclassified=True)
    assert counted.pooled.n_blocks == 9


def test_friedman_matches_scipy_per_seed_and_pooled(hand_table):
    result = compare_over_seeds(hand_table)
    pooled = stats.friedmanchisquare(*columns_of(EIGHTHS))
    assert result.pooled.friedman_statistic == pytest.approx(pooled.statistic)
    assert result.pooled.friedman_p == pytest.approx(pooled.pvalue)
    for seed in (1, 2):
        one_seed = {key: v for key, v in EIGHTHS.items() if key[0] == seed}
        assert result.per_seed[seed].friedman_statistic == pytest.approx(
            stats.friedmanchisquare(*columns_of(one_seed)).statistic)


def test_wilcoxon_matches_scipy_and_the_ranks_worked_by_hand(hand_table):
    pooled = compare_over_seeds(hand_table).pooled
    pair = pooled.pairs.set_index(["method_a", "method_b"]).loc[("a", "b")]
    a, b, _ = columns_of(EIGHTHS)
    reference = stats.wilcoxon(a, b, zero_method="zsplit")
    assert pair["wilcoxon_p"] == pytest.approx(reference.pvalue)
    # a - b in eighths: 2, 0, 4, 0, -5, 1, -1, 5; ranks of |d|: zeros 1.5, ones 3.5, 2 -> 5,
    # 4 -> 6, fives 7.5; R+ = 5 + 6 + 3.5 + 7.5 + 1.5 = 23.5, R- = 7.5 + 3.5 + 1.5 = 12.5
    assert pair["wilcoxon_statistic"] == 12.5
    assert pair["rank_biserial"] == pytest.approx((23.5 - 12.5) / 36)
    assert pair["mean_difference"] == pytest.approx(6 / 8 / 8)


def test_rank_biserial_extremes():
    assert rank_biserial(np.array([1.0, 2.0, 3.0])) == 1
    assert rank_biserial(np.array([-1.0, -2.0])) == -1
    assert rank_biserial(np.zeros(4)) == 0


def test_holm_on_planted_p_values():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> kept at 0.06
    adjusted = holm_adjust(np.array([0.01, 0.04, 0.03, 0.005]))
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust(np.array([0.5, 0.6])) == pytest.approx([1.0, 1.0])


def test_cd_groups_are_maximal_runs_within_the_critical_difference():
    ranks = pd.DataFrame({"method": list("pqrst"), "average_rank": [1.0, 1.5, 2.25, 2.5, 4.0],
                          "mean_score": 0.0})
    comparison = MethodComparison(n_blocks=10, n_methods=5, alpha=0.05, friedman_statistic=0.0, friedman_p=1.0,
                                  iman_davenport_statistic=0.0, iman_davenport_p=1.0, critical_difference=1.0,
                                  ranks=ranks, pairs=pd.DataFrame())
    # p-q (r is 1.25 from p); q-r-s (s is exactly 1.0 from q: not further than the CD); t alone
    assert comparison.cd_groups() == [("p", "q"), ("q", "r", "s")]
    table = comparison.cd_table()
    assert list(table["groups"]) == ["1", "1;2", "2", "2", ""]
    assert (table["critical_difference"] == 1.0).all()


def test_seed_counts_on_planted_seeds():
    # 20 images per seed, base value 10 i: seed 1 orders x > z > y everywhere; seed 2 has
    # x > z = y everywhere; seed 3 rotates three orders, so no pair separates
    scores = {}
    for i in range(20):
        base = 10 * i
        scores[(1, str(i))] = {"x": base + 2, "y": base, "z": base + 1}
        scores[(2, str(i))] = {"x": base + 1, "y": base, "z": base}
        scores[(3, str(i))] = [{"x": base + 2, "y": base + 1, "z": base},
                               {"x": base, "y": base + 2, "z": base + 1},
                               {"x": base + 1, "y": base, "z": base + 2}][i % 3]
    table = pd.DataFrame([{"seed": s, "split": "test", "image_id": image, "method": m, "correct": True, "tko": v}
                          for (s, image), values in scores.items() for m, v in values.items()])
    result = compare_over_seeds(table)
    counts = {frozenset((r.method_a, r.method_b)): (r.n_seeds, r.n_holm_significant, r.n_nemenyi_significant)
              for r in result.seed_counts.itertuples()}
    assert counts == {frozenset("xy"): (3, 2, 2), frozenset("xz"): (3, 2, 2), frozenset("yz"): (3, 1, 1)}
    assert result.pooled.n_blocks == 60
    assert not result.per_seed[3].pairs["holm_significant"].any()


def test_block_matrix_keeps_the_named_methods_in_order(hand_table):
    matrix = block_matrix(hand_table, methods=["c", "a"])
    assert list(matrix.columns) == ["c", "a"]
    assert len(matrix) == 9  # the defect-free image has no scores; correctness is not its business
    with pytest.raises(ValueError, match="no rows"):
        block_matrix(hand_table, methods=["a", "zz"])
    with pytest.raises(ValueError, match="more than one row"):
        block_matrix(pd.concat([hand_table, hand_table.iloc[:1]]))


def test_compare_over_seeds_refuses_two_splits_and_two_methods(hand_table):
    both = pd.concat([hand_table, hand_table.assign(split="train")])
    with pytest.raises(ValueError, match="one split"):
        compare_over_seeds(both)
    with pytest.raises(ValueError, match="at least 3 methods"):
        compare_over_seeds(hand_table, methods=["a", "b"])
