"""Tests for pixel_evidence.metrics on small hand-made arrays and tables."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from pixel_evidence.metrics import (auroc, balanced_accuracy, chance_level, curve_auc, defect_region, lift,
                                    localisation_scores, pointing_game, rank_methods, relevance_mass,
                                    summarize_over_seeds, top_fraction_membership, top_k_iou, top_k_overlap,
                                    top_selection, win_rates, win_shares)
from pixel_evidence.metrics.topk_picture import topk_pixels

# ---------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------


def expected_overlap_over_tie_breaks(a, mask):
    """Average hard top-K overlap over every ordering of the pixels.

    Each permutation acts as a tie-breaker: pixels are sorted by value,
    descending, and equal values keep permutation order.  Exact Fraction.
    """
    a = np.asarray(a).ravel()
    s = np.asarray(mask).ravel() > 0
    k = int(s.sum())
    total, count = 0, 0
    for perm in itertools.permutations(range(a.size)):
        order = sorted(range(a.size), key=lambda i: (-a[i], perm[i]))
        total += sum(bool(s[i]) for i in order[:k])
        count += 1
    return Fraction(total, count * k)


def auroc_by_pairs(a, mask):
    """AUROC by comparing every (defect, background) pixel pair."""
    a = np.asarray(a, dtype=float).ravel()
    s = np.asarray(mask).ravel() > 0
    pos, neg = a[s], a[~s]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (pos.size * neg.size)


# ---------------------------------------------------------------------------
# The tie rule: top_selection
# ---------------------------------------------------------------------------


def selection_frequency_over_tie_breaks(values, k):
    """How often each entry is among the k highest, over every order of the entries (Fractions)."""
    counts = [0] * values.size
    orders = list(itertools.permutations(range(values.size)))
    for perm in orders:
        for i in sorted(range(values.size), key=lambda i: (-values[i], perm[i]))[:k]:
            counts[i] += 1
    return [Fraction(c, len(orders)) for c in counts]


def test_tied_entries_share_the_free_slots():
    values = np.array([5.0, 2.0, 2.0, 2.0, 0.0, 0.0])
    top = top_selection(values, 2)
    # the 5 takes one slot outright; the three 2s share the other one
    assert top.above.tolist() == [True, False, False, False, False, False]
    assert top.tied.tolist() == [False, True, True, True, False, False]
    assert (top.n_above, top.n_tied, top.tie_share) == (1, 3, Fraction(1, 3))
    assert top.weights().tolist() == [1.0, 1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]
    region = np.array([False, True, True, False, False, True])
    assert top.overlap(region) == Fraction(2, 3)  # exact: two tied entries on the region


def test_entries_at_the_cutoff_that_all_fit_are_not_a_tie():
    top = top_selection(np.array([[5.0, 5.0], [0.0, 1.0]]), 2)
    assert top.above.tolist() == [[True, True], [False, False]]  # the shape is kept
    assert top.n_tied == 0 and top.tie_share == 1
    assert top.weights().sum() == 2


@pytest.mark.parametrize("seed", range(5))
def test_selection_weights_equal_the_mean_over_tie_breaks(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 3, size=6).astype(float)  # few values -> many ties
    k = int(rng.integers(1, 7))
    top = top_selection(values, k)
    expected = selection_frequency_over_tie_breaks(values, k)
    shares = [1 if top.above[i] else top.tie_share if top.tied[i] else 0 for i in range(values.size)]
    assert shares == expected  # exact fractions
    assert top.weights().sum() == pytest.approx(k)


def test_selection_does_not_depend_on_pixel_order():
    rng = np.random.default_rng(11)
    values = np.floor(rng.random(40) * 4)
    region = rng.random(40) < 0.3
    perm = rng.permutation(values.size)
    top, permuted = top_selection(values, 9), top_selection(values[perm], 9)
    assert permuted.overlap(region[perm]) == top.overlap(region)
    assert permuted.tie_share == top.tie_share
    assert permuted.weights().tolist() == top.weights()[perm].tolist()


@pytest.mark.parametrize("k", [0, 7])
def test_selection_needs_one_to_n_slots(k):
    with pytest.raises(ValueError, match="k must lie in"):
        top_selection(np.zeros(6), k)


def test_overlap_picture_and_membership_share_one_rule():
    rng = np.random.default_rng(5)
    a = np.floor(rng.random((10, 10)) * 3)
    mask = rng.random((10, 10)) < 0.2
    k = int(mask.sum())
    top = top_selection(a, k)
    assert top_k_overlap(a, mask) == float(top.overlap(mask) / k)
    picture = topk_pixels(a, mask)
    assert (picture.n_above, picture.n_tied, picture.tie_share) == (top.n_above, top.n_tied, float(top.tie_share))
    assert top_fraction_membership(a, k / a.size).tolist() == top.weights().ravel().tolist()


# ---------------------------------------------------------------------------
# top_k_overlap
# ---------------------------------------------------------------------------


def test_partial_overlap():
    a = np.array([[4.0, 3.0], [2.0, 1.0]])
    mask = np.array([[1, 0], [1, 0]])
    # Top-2 = {4, 3}; only the 4 lies in the mask.
    assert top_k_overlap(a, mask) == 0.5


def test_ties_at_cutoff_get_fractional_credit():
    a = np.array([[5.0, 2.0, 2.0], [2.0, 0.0, 0.0]])
    mask = np.array([[0, 1, 0], [1, 0, 0]], dtype=bool)
    # K=2: the 5 takes one slot, three pixels tied at 2 share the other,
    # two of them are in the mask -> inter = 2/3, TKO = 1/3.
    assert top_k_overlap(a, mask) == 1 / 3


def test_cutoff_tie_with_mask_on_the_clear_winner():
    a = np.array([[5.0, 2.0, 2.0], [2.0, 0.0, 0.0]])
    mask = np.array([[1, 0, 0], [0, 0, 1]])
    # 5 is a sure hit; the masked 0 is never selected -> 1/2.
    assert top_k_overlap(a, mask) == 0.5


def test_all_equal_map_scores_chance_exactly():
    a = np.full((4, 5), 0.25)
    mask = np.zeros((4, 5))
    mask[1, 1:4] = 1
    assert top_k_overlap(a, mask) == 3 / 20


def test_empty_mask_is_nan():
    assert math.isnan(top_k_overlap(np.arange(6.0).reshape(2, 3), np.zeros((2, 3))))


def test_full_mask_is_one():
    a = np.array([[-1.0, 3.0], [0.0, 0.0]])
    assert top_k_overlap(a, np.ones((2, 2))) == 1.0


def test_one_pixel_mask():
    a = np.array([[0.1, 0.9], [0.4, 0.2]])
    hit = np.array([[0, 1], [0, 0]])
    miss = np.array([[0, 0], [1, 0]])
    assert top_k_overlap(a, hit) == 1.0
    assert top_k_overlap(a, miss) == 0.0
    # Two pixels share the maximum: each is picked half the time.
    a_tied = np.array([[0.1, 0.9], [0.9, 0.2]])
    assert top_k_overlap(a_tied, hit) == 0.5


@pytest.mark.parametrize("seed", range(6))
def test_fractional_rule_equals_mean_over_tie_breaks(seed):
    rng = np.random.default_rng(seed)
    shape = (2, 3) if seed % 2 else (3, 2)
    a = rng.integers(0, 3, size=shape).astype(float)  # few values -> many ties
    mask = np.zeros(a.size, dtype=int)
    mask[rng.choice(a.size, size=rng.integers(1, a.size), replace=False)] = 1
    mask = mask.reshape(shape)
    expected = expected_overlap_over_tie_breaks(a, mask)
    # Both sides are one rounding of the same rational, so equality is exact.
    assert top_k_overlap(a, mask) == float(expected)


def test_invariant_under_pixel_permutation():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 4, size=(5, 6)).astype(float)
    mask = (rng.random((5, 6)) < 0.3).astype(int)
    perm = rng.permutation(a.size)
    a_p = a.ravel()[perm].reshape(6, 5)
    mask_p = mask.ravel()[perm].reshape(6, 5)
    assert top_k_overlap(a_p, mask_p) == top_k_overlap(a, mask)
    assert localisation_scores(a_p, mask_p) == localisation_scores(a, mask)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        top_k_overlap(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_attribution_is_rejected(bad):
    a = np.ones((2, 2))
    a[0, 1] = bad
    with pytest.raises(ValueError, match="non-finite"):
        top_k_overlap(a, np.eye(2))


# ---------------------------------------------------------------------------
# chance, lift, IoU, combined scores
# ---------------------------------------------------------------------------

WORKED_A = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]])
WORKED_MASK = np.array([[1, 0, 0], [1, 1, 0]])
# K=3, N=6; top-3 = {0.9, 0.8, 0.7}, two of them in the mask:
# TKO 2/3, chance 1/2, lift 4/3, IoU 2 / (6 - 2) = 1/2.


def test_worked_example():
    assert top_k_overlap(WORKED_A, WORKED_MASK) == 2 / 3
    assert chance_level(WORKED_MASK) == 0.5
    assert lift(2 / 3, WORKED_MASK) == pytest.approx(4 / 3)
    assert top_k_iou(WORKED_A, WORKED_MASK) == 0.5


def test_localisation_scores_match_individual_functions():
    scores = localisation_scores(WORKED_A, WORKED_MASK)
    assert set(scores) == {"tko", "chance", "lift", "iou", "k", "n"}
    assert (scores["k"], scores["n"]) == (3, 6)
    assert scores["tko"] == top_k_overlap(WORKED_A, WORKED_MASK)
    assert scores["chance"] == chance_level(WORKED_MASK)
    assert scores["lift"] == lift(scores["tko"], WORKED_MASK)
    assert scores["iou"] == top_k_iou(WORKED_A, WORKED_MASK)


def test_iou_uses_fractional_intersection():
    a = np.array([[5.0, 2.0, 2.0], [2.0, 0.0, 0.0]])
    mask = np.array([[0, 1, 0], [1, 0, 0]])
    inter = 2 / 3
    assert top_k_iou(a, mask) == pytest.approx(inter / (4 - inter))


def test_constant_map_has_lift_one():
    mask = np.zeros((3, 4))
    mask[0, :2] = 1
    assert localisation_scores(np.zeros((3, 4)), mask)["lift"] == pytest.approx(1.0)


def test_empty_mask_gives_nan_everywhere():
    scores = localisation_scores(np.ones((2, 2)), np.zeros((2, 2)))
    assert (scores["k"], scores["n"]) == (0, 4)
    for name in ("tko", "chance", "lift", "iou"):
        assert math.isnan(scores[name])
    assert math.isnan(chance_level(np.zeros(3)))
    assert math.isnan(lift(0.5, np.zeros(3)))
    assert math.isnan(top_k_iou(np.ones(3), np.zeros(3)))


# ---------------------------------------------------------------------------
# pointing game, relevance mass, AUROC
# ---------------------------------------------------------------------------


def test_pointing_game():
    a = np.array([[0.2, 0.7], [0.1, 0.3]])
    assert pointing_game(a, [[0, 1], [0, 0]]) == 1.0
    assert pointing_game(a, [[1, 0], [1, 1]]) == 0.0
    tied = np.array([[0.7, 0.7], [0.7, 0.3]])
    # Three pixels share the maximum, one of them is in the mask.
    assert pointing_game(tied, [[0, 1], [0, 1]]) == pytest.approx(1 / 3)
    assert math.isnan(pointing_game(a, np.zeros((2, 2))))


def test_relevance_mass():
    a = np.array([[1.0, 3.0], [0.0, 4.0]])
    mask = np.array([[0, 1], [1, 0]])
    assert relevance_mass(a, mask) == pytest.approx((3.0 + 0.0) / 8.0)
    assert math.isnan(relevance_mass(np.zeros((2, 2)), mask))
    assert math.isnan(relevance_mass(a, np.zeros((2, 2))))
    with pytest.raises(ValueError, match="non-negative"):
        relevance_mass(-a, mask)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pair_counting(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=(4, 5)).astype(float)
    mask = np.zeros(20, dtype=int)
    mask[rng.choice(20, size=rng.integers(1, 20), replace=False)] = 1
    mask = mask.reshape(4, 5)
    assert auroc(a, mask) == pytest.approx(auroc_by_pairs(a, mask), abs=1e-12)


def test_auroc_edge_cases():
    mask = np.array([[1, 0], [0, 0]])
    assert auroc(np.array([[2.0, 1.0], [1.0, 0.0]]), mask) == 1.0
    assert auroc(np.ones((2, 2)), mask) == 0.5
    assert math.isnan(auroc(np.ones((2, 2)), np.zeros((2, 2))))
    assert math.isnan(auroc(np.ones((2, 2)), np.ones((2, 2))))


# ---------------------------------------------------------------------------
# rank_methods, win_shares
# ---------------------------------------------------------------------------


def _same(x, y):
    return (math.isnan(x) and math.isnan(y)) or x == y


def test_rank_methods_ties_and_nan():
    ranks = rank_methods({"gc": 0.5, "sal": 0.5, "ig": 0.2, "lime": math.nan, "x": 0.1})
    assert ranks["gc"] == ranks["sal"] == 1.5
    assert ranks["ig"] == 3.0
    assert ranks["x"] == 4.0  # the NaN method takes no place
    assert math.isnan(ranks["lime"])


def test_rank_methods_three_way_tie_in_the_middle():
    ranks = rank_methods({"a": 0.9, "b": 0.4, "c": 0.4, "d": 0.4, "e": 0.0})
    assert ranks == {"a": 1.0, "b": 3.0, "c": 3.0, "d": 3.0, "e": 5.0}


def test_rank_methods_and_win_shares_ignore_dict_order():
    scores = {"gc": 0.3, "sal": math.nan, "ig": 0.3, "lime": 0.1}
    for fn in (rank_methods, win_shares):
        base = fn(scores)
        for order in itertools.permutations(scores):
            other = fn({m: scores[m] for m in order})
            assert all(_same(other[m], base[m]) for m in scores)


def test_win_shares():
    assert win_shares({"gc": 0.4, "sal": 0.2, "ig": 0.1}) == {"gc": 1.0, "sal": 0.0, "ig": 0.0}
    tied = win_shares({"gc": 0.4, "sal": 0.4, "ig": 0.4, "lime": 0.1})
    assert tied == {"gc": 1 / 3, "sal": 1 / 3, "ig": 1 / 3, "lime": 0.0}
    with_nan = win_shares({"gc": math.nan, "sal": 0.2, "ig": 0.2})
    assert with_nan == {"gc": 0.0, "sal": 0.5, "ig": 0.5}
    assert all(math.isnan(v) for v in win_shares({"gc": math.nan, "sal": math.nan}).values())


def test_win_shares_do_not_merge_close_scores():
    # One pixel out of 10000 is a real difference.
    shares = win_shares({"gc": 5000 / 10000, "sal": 4999 / 10000})
    assert shares == {"gc": 1.0, "sal": 0.0}


# ---------------------------------------------------------------------------
# win_rates
# ---------------------------------------------------------------------------


def _table():
    rows = []

    def image(seed, image_id, cls, correct, gc, sal, ig):
        for method, tko in (("gc", gc), ("sal", sal), ("ig", ig)):
            rows.append(dict(seed=seed, split="test", image_id=image_id, **{"class": cls},
                             correct=correct, method=method, tko=tko))

    nan = math.nan
    image(0, "a", "crack", True, 0.5, 0.5, 0.2)   # gc, sal share
    image(0, "b", "crack", True, 0.1, 0.3, 0.6)   # ig wins
    image(0, "c", "hole", False, 0.9, 0.1, 0.1)   # gc wins, misclassified
    image(0, "d", "good", True, nan, nan, nan)    # no defect
    image(0, "e", "hole", True, 0.4, 0.4, 0.4)    # three-way tie
    image(1, "a", "crack", True, 0.7, 0.2, 0.1)   # gc wins
    image(1, "c", "hole", True, 0.2, 0.3, 0.1)    # sal wins
    image(1, "d", "good", True, nan, nan, nan)
    return pd.DataFrame(rows)


def _lookup(rates, seed, cls, method):
    row = rates[(rates.seed == seed) & (rates["class"] == cls) & (rates.method == method)]
    assert len(row) == 1
    return row.win_rate.iloc[0], row.n_images.iloc[0]


def _check(rates, expected):
    for (seed, cls, method), (rate, n) in expected.items():
        got_rate, got_n = _lookup(rates, seed, cls, method)
        assert got_n == n, (seed, cls, method)
        if math.isnan(rate):
            assert math.isnan(got_rate), (seed, cls, method)
        else:
            assert got_rate == pytest.approx(rate), (seed, cls, method)


def test_win_rates_default_counts_correct_images_only():
    rates = win_rates(_table())
    assert list(rates.columns) == ["seed", "split", "class", "method", "win_rate", "n_images"]
    # 2 seeds x (crack, good, hole, overall) x 3 methods, nothing dropped.
    assert len(rates) == 24
    nan = math.nan
    expected = {
        # seed 0: crack = images a, b; hole = e only (c is misclassified).
        (0, "crack", "gc"): (0.5 / 2, 2),
        (0, "crack", "sal"): (0.5 / 2, 2),
        (0, "crack", "ig"): (1.0 / 2, 2),
        (0, "hole", "gc"): (1 / 3, 1),
        (0, "hole", "ig"): (1 / 3, 1),
        (0, "good", "gc"): (nan, 0),
        (0, "overall", "gc"): ((0.5 + 1 / 3) / 3, 3),
        (0, "overall", "sal"): ((0.5 + 1 / 3) / 3, 3),
        (0, "overall", "ig"): ((1 + 1 / 3) / 3, 3),
        # seed 1: a -> gc, c -> sal.
        (1, "crack", "gc"): (1.0, 1),
        (1, "crack", "sal"): (0.0, 1),
        (1, "hole", "sal"): (1.0, 1),
        (1, "good", "ig"): (nan, 0),
        (1, "overall", "gc"): (0.5, 2),
        (1, "overall", "sal"): (0.5, 2),
        (1, "overall", "ig"): (0.0, 2),
    }
    _check(rates, expected)


def test_win_rates_with_misclassified_images():
    rates = win_rates(_table(), include_misclassified=True)
    expected = {
        (0, "hole", "gc"): ((1 + 1 / 3) / 2, 2),
        (0, "hole", "sal"): ((1 / 3) / 2, 2),
        (0, "crack", "ig"): (1.0 / 2, 2),
        (0, "overall", "gc"): ((0.5 + 1 + 1 / 3) / 4, 4),
        (0, "overall", "sal"): ((0.5 + 1 / 3) / 4, 4),
        (0, "overall", "ig"): ((1 + 1 / 3) / 4, 4),
        (1, "overall", "gc"): (0.5, 2),  # seed 1 has no misclassified rows
    }
    _check(rates, expected)


def test_win_rates_sum_to_one_over_methods():
    rates = win_rates(_table()).dropna(subset=["win_rate"])
    totals = rates.groupby(["seed", "split", "class"])["win_rate"].sum()
    assert np.allclose(totals, 1.0)


def test_win_rates_keep_method_missing_from_a_seed():
    table = _table()
    # A weak extra method scored in seed 0 only (0 * NaN keeps good images NaN).
    gc0 = table[(table.seed == 0) & (table.method == "gc")]
    extra = gc0.assign(method="lime", tko=gc0.tko * 0.0)
    rates = win_rates(pd.concat([table, extra], ignore_index=True))
    rate, n = _lookup(rates, 1, "overall", "lime")
    assert n == 0 and math.isnan(rate)
    assert _lookup(rates, 0, "overall", "lime") == (0.0, 3)


def test_win_rates_empty_inputs():
    table = _table()
    assert win_rates(table.iloc[:0]).empty
    only_good = win_rates(table[table["class"] == "good"])
    assert (only_good.n_images == 0).all() and only_good.win_rate.isna().all()
    assert len(only_good) == 2 * 2 * 3  # seeds x (good, overall) x methods


def test_win_rates_refuse_a_correct_column_of_strings():
    """"True"/"False" strings (a CSV read with another dtype) would fail ``eq(True)`` and
    drop every image; a one-line error names the first odd value instead."""
    table = _table().assign(correct=lambda t: t["correct"].astype(str))
    with pytest.raises(ValueError, match="boolean 'correct' column.*'True' \\(str\\)"):
        win_rates(table)
    counted_all = win_rates(table, include_misclassified=True)  # the column is not read then
    assert counted_all.equals(win_rates(_table(), include_misclassified=True))


def test_win_rates_rejects_duplicates_and_missing_columns():
    table = _table()
    with pytest.raises(ValueError, match="duplicate"):
        win_rates(pd.concat([table, table.iloc[[0]]], ignore_index=True))
    with pytest.raises(ValueError, match="tko"):
        win_rates(table.drop(columns="tko"))


# ---------------------------------------------------------------------------
# summarize_over_seeds
# ---------------------------------------------------------------------------


def _rates():
    values = {
        ("test", "crack", "gc"): [0.2, 0.5, 0.4, 0.9, 0.3, 0.6],
        ("test", "crack", "ig"): [0.8, 0.5, 0.6, 0.1, 0.7, 0.4],
        ("test", "hole", "gc"): [0.25, math.nan, math.nan, math.nan, math.nan, math.nan],
    }
    return pd.DataFrame([
        dict(seed=seed, split=split, method=method, win_rate=v, n_images=5, **{"class": cls})
        for (split, cls, method), vs in values.items()
        for seed, v in enumerate(vs)
    ])


def test_summary_mean_std_match_numpy():
    summary = summarize_over_seeds(_rates(), n_boot=2000)
    row = summary[(summary["class"] == "crack") & (summary.method == "gc")].iloc[0]
    x = np.array([0.2, 0.5, 0.4, 0.9, 0.3, 0.6])
    assert row["mean"] == pytest.approx(x.mean())
    assert row["std"] == pytest.approx(x.std(ddof=1))
    assert row["n_seeds"] == 6
    assert x.min() <= row["ci_low"] < row["mean"] < row["ci_high"] <= x.max()


def test_summary_single_seed_and_nan_seeds():
    summary = summarize_over_seeds(_rates(), n_boot=500)
    row = summary[summary["class"] == "hole"].iloc[0]
    assert row["n_seeds"] == 1
    assert row["mean"] == 0.25
    assert math.isnan(row["std"])
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])


def test_summary_is_deterministic_and_group_independent():
    rates = _rates()
    first = summarize_over_seeds(rates, n_boot=1000, rng_seed=3)
    again = summarize_over_seeds(rates, n_boot=1000, rng_seed=3)
    pd.testing.assert_frame_equal(first, again)
    # Dropping another group must not move this group's interval.
    alone = summarize_over_seeds(rates[rates.method == "gc"], n_boot=1000, rng_seed=3)
    pick = lambda df: df[(df["class"] == "crack") & (df.method == "gc")][["ci_low", "ci_high"]]
    assert pick(alone).to_numpy().tolist() == pick(first).to_numpy().tolist()


def test_summary_constant_values_give_zero_width_interval():
    rates = pd.DataFrame(dict(seed=[0, 1, 2], split="val", method="gc", win_rate=0.4,
                              **{"class": "overall"}))
    row = summarize_over_seeds(rates, n_boot=100).iloc[0]
    assert row["ci_low"] == pytest.approx(0.4) and row["ci_high"] == pytest.approx(0.4)
    assert row["std"] == pytest.approx(0.0)


# ---------------------------------------------------------------------------
# balanced_accuracy
# ---------------------------------------------------------------------------


def test_balanced_accuracy_weighs_every_class_alike():
    # good: 4 of 4 right, crack: 1 of 2 right -> (1 + 0.5) / 2, whatever the class sizes
    true = ["good"] * 4 + ["crack"] * 2
    predicted = ["good"] * 5 + ["crack"]
    assert balanced_accuracy(true, predicted) == 0.75
    as_indices = [0] * 4 + [1] * 2, [0] * 5 + [1]
    assert balanced_accuracy(*as_indices) == balanced_accuracy(*as_indices, 2) == 0.75


def test_balanced_accuracy_skips_classes_without_images():
    # "hole" has no image, so it has no recall; "x" is not among the classes asked for
    assert balanced_accuracy(["good", "crack", "x"], ["good", "good", "x"], ["good", "crack", "hole"]) == 0.5
    assert math.isnan(balanced_accuracy([], []))
    with pytest.raises(ValueError, match="differ in shape"):
        balanced_accuracy([0, 1], [0])


# Integrated Gradients' test win rates of the ten shipped seeds, rounded (a realistic group).
_TEN_SEEDS = [0.6068, 0.6536, 0.5703, 0.5, 0.6562, 0.6172, 0.513, 0.5859, 0.6172, 0.6328]


def _one_group(values, method="ig"):
    return pd.DataFrame(dict(seed=range(len(values)), split="test", method=method, win_rate=values,
                             **{"class": "overall"}))


def test_bootstrap_interval_agrees_with_a_direct_resampling_of_the_seeds():
    # The direct way: draw the seeds with replacement (indices, another generator and seed),
    # average, take the 2.5% and 97.5% quantiles. Both are Monte-Carlo estimates of the same
    # quantiles of the bootstrap distribution of the mean, which for ten seeds is close to a
    # normal of sd s = std(x, ddof=0) / sqrt(10). A p-quantile estimated from B draws has
    # standard error sqrt(p (1 - p) / B) / f(q), with f(q) = phi(1.96) / s at p = 2.5%:
    # 0.1561 / 0.05845 * s / sqrt(B) = 2.67 s / sqrt(B). The two estimates' difference has
    # sqrt(2) times that for equal B; five standard errors of it is the tolerance.
    x = np.array(_TEN_SEEDS)
    n_boot = 20000
    row = summarize_over_seeds(_one_group(x), n_boot=n_boot, rng_seed=0).iloc[0]
    rng = np.random.default_rng(2024)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    low, high = np.quantile(means, [0.025, 0.975])
    s = x.std() / math.sqrt(x.size)
    tolerance = 5 * math.sqrt(2) * 2.67 * s / math.sqrt(n_boot)
    assert tolerance < 0.1 * (high - low)  # tight enough to tell a 95% from, say, a 90% interval
    assert abs(row["ci_low"] - low) < tolerance and abs(row["ci_high"] - high) < tolerance
    narrower = np.quantile(means, [0.05, 0.95])
    assert abs(row["ci_low"] - narrower[0]) > tolerance and abs(row["ci_high"] - narrower[1]) > tolerance
    # and the interval is around the mean of the seeds, not of anything else
    assert row["mean"] == pytest.approx(x.mean()) and row["ci_low"] < x.mean() < row["ci_high"]


@pytest.mark.parametrize("values", [[0.2, 0.7, 0.4], [0.9, 0.1]])
def test_bootstrap_interval_of_few_seeds_is_their_range_exactly(values):
    # With n seeds, a resample made of the smallest seed alone has probability n^-n (1/27 for
    # three, 1/4 for two), above 2.5%: of 10000 resamples about 370 (sd 19) are that value, and
    # the 2.5% quantile lies at the 250th, so it is the smallest seed itself (missing it needs
    # a shortfall of six sd). The same holds for the largest at 97.5%.
    row = summarize_over_seeds(_one_group(values), n_boot=10000, rng_seed=1).iloc[0]
    assert row["ci_low"] == min(values) and row["ci_high"] == max(values)


# ---------------------------------------------------------------------------
# curve areas and mask inputs
# ---------------------------------------------------------------------------


def test_curve_auc_refuses_fractions_out_of_order():
    # y = x: area 0.5. Integrating the points in the order given would give 0.375.
    with pytest.raises(ValueError, match=r"fractions\[1\] = 0 follows 0.5"):
        curve_auc([0.5, 0, 1], [0.5, 0, 1])
    assert curve_auc([0, 0.5, 1], [0, 0.5, 1]) == 0.5
    # a repeated fraction (more steps than pixels) is a step of zero width
    assert curve_auc([0, 0.5, 0.5, 1], [0, 0.5, 0.5, 1]) == 0.5


def _soft_mask():
    """A square defect with a soft fringe (as bilinear resizing leaves): 0.1-0.5 around a
    core of 0.6-1.0, and a trace of 0.01 elsewhere. Its defect region is the core."""
    rng = np.random.default_rng(5)
    soft = np.full((12, 12), 0.01)
    soft[2:9, 3:10] = rng.uniform(0.1, 0.5, (7, 7))
    soft[3:8, 4:9] = rng.uniform(0.6, 1.0, (5, 5))
    return soft


def test_a_soft_mask_scores_like_its_binarised_version():
    soft = _soft_mask()
    hard = soft > 0.5
    assert hard.sum() == 25 < np.count_nonzero(soft)  # counting every value > 0 would make K 144
    a = np.random.default_rng(6).random(soft.shape)
    a[3:8, 4:9] += 0.3
    assert localisation_scores(a, soft) == localisation_scores(a, hard)
    assert localisation_scores(a, soft)["k"] == 25
    for score in (pointing_game, relevance_mass, auroc, top_k_overlap, top_k_iou):
        assert score(a, soft) == score(a, hard), score.__name__
    assert chance_level(soft) == chance_level(hard) == 25 / 144
    assert lift(0.5, soft) == lift(0.5, hard)
    picture, expected = topk_pixels(a, soft), topk_pixels(a, hard)
    assert np.array_equal(picture.codes, expected.codes) and picture.hits == expected.hits and picture.k == 25


def test_the_mask_is_binarised_once_where_it_enters(monkeypatch):
    import pixel_evidence.metrics.inputs as inputs
    import pixel_evidence.metrics.localisation as localisation

    hard = _soft_mask() > 0.5
    assert defect_region(hard) is hard  # a boolean mask is taken as it is: nothing to re-threshold
    calls = []

    def counted(mask):
        calls.append(1)
        return defect_region(mask)

    monkeypatch.setattr(inputs, "defect_region", counted)
    monkeypatch.setattr(localisation, "defect_region", counted)
    a = np.random.default_rng(7).random(hard.shape)
    for score in (localisation_scores, top_k_overlap, pointing_game, relevance_mass, auroc, topk_pixels):
        calls.clear()
        score(a, _soft_mask())
        assert len(calls) == 1, score.__name__
    calls.clear()
    chance_level(_soft_mask())
    lift(0.5, _soft_mask())
    assert len(calls) == 2


def test_a_mask_outside_zero_to_one_is_refused():
    eight_bit = np.where(_soft_mask() > 0.5, 255, 0)
    with pytest.raises(ValueError, match=r"boolean or holds coverage in \[0, 1\], got values in \[0, 255\]"):
        top_k_overlap(np.zeros(eight_bit.shape), eight_bit)
    with pytest.raises(ValueError, match="mask contains non-finite"):
        chance_level(np.full((2, 2), np.nan))
