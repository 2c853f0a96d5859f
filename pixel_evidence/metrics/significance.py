"""Which differences between methods are significant: Friedman, Nemenyi and Wilcoxon-Holm.

The methods are compared on the same images, so each image is a block (Demšar, JMLR 2006):

- the Friedman test asks whether the methods' average ranks differ at all; rank 1 is the
  highest score, tied scores share the centre of their ranks (:func:`.ties.average_ranks`);
- Nemenyi's post-hoc test separates two methods whose average ranks differ by more than
  the critical difference ``CD = q_alpha * sqrt(k (k + 1) / (6 N))``; the methods that no
  such gap separates form the bars of a critical-difference diagram;
- every pair also gets a paired Wilcoxon signed-rank test on the score differences, Holm's
  step-down correction over all pairs, and the matched-pairs rank-biserial correlation.

:func:`compare_methods` runs these on one matrix of blocks x methods; :func:`compare_over_seeds`
on a tidy score table, once per seed (blocks = the seed's images) and once pooled (blocks =
(seed, image)), counting for every pair the seeds that separate it.

Zero differences in the Wilcoxon test (two methods with equal scores on an image, common
for TKO: equal maps, or both with no top-K pixel in the defect) are split evenly between
the positive and the negative ranks (``zero_method="zsplit"``). A tie is an image on
which neither method did better, so it stays in the count as evidence for neither side;
dropping it (``"wilcox"``) would test only the images where the two differ and overstate
the separation of near-identical methods, and a pair that ties everywhere gets p = 1
instead of no test. The rank-biserial correlation counts the zeros the same way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs
from scipy import stats
from statsmodels.stats.multitest import multipletests

from pixel_evidence.metrics.ties import average_ranks

ZERO_METHOD = "zsplit"  # how the Wilcoxon test counts zero differences; see the module docstring
PAIR_COLUMNS = ["method_a", "method_b", "rank_difference", "mean_difference", "nemenyi_p", "nemenyi_significant",
                "wilcoxon_statistic", "wilcoxon_p", "holm_p", "holm_significant", "rank_biserial"]
_REQUIRED_COLUMNS = ("seed", "split", "image_id", "method")


@dataclass(frozen=True)
class MethodComparison:
    """Friedman, Nemenyi and pairwise Wilcoxon-Holm results over one set of blocks.

    Attributes
    ----------
    n_blocks, n_methods : int
        N blocks (images) and k methods, every method scored on every block.
    alpha : float
        Significance level of ``critical_difference`` and the ``*_significant`` columns.
    friedman_statistic, friedman_p : float
        ``scipy.stats.friedmanchisquare``'s chi^2_F (corrected for ties within blocks) and
        its p-value from chi^2 with k - 1 degrees of freedom; nan when every block ties every
        method (then nothing can be ranked).
    iman_davenport_statistic, iman_davenport_p : float
        Iman and Davenport's F_F = (N - 1) chi^2_F / (N (k - 1) - chi^2_F) and its p-value
        from F with (k - 1, (k - 1)(N - 1)) degrees of freedom; nan when every block ranks
        the methods identically (the denominator is zero).
    critical_difference : float
        Nemenyi's CD at ``alpha``: average ranks further apart than this differ significantly.
    ranks : DataFrame
        One row per method, best (lowest average rank) first: ``method``, ``average_rank``
        (rank 1 = highest score, ties averaged), ``mean_score``.
    pairs : DataFrame
        One row per unordered pair, ``method_a`` the better ranked (ties: name order), with
        ``rank_difference`` (average rank of b minus that of a, >= 0), ``mean_difference``
        (mean score of a minus b), ``nemenyi_p`` (scikit-posthocs'
        ``posthoc_nemenyi_friedman``), ``nemenyi_significant`` (``nemenyi_p < alpha``, the
        same as ``rank_difference > critical_difference``), ``wilcoxon_statistic`` and
        ``wilcoxon_p`` (``scipy.stats.wilcoxon`` two-sided, ``zero_method="zsplit"``, scipy's
        default choice of exact or normal-approximation p-value),
        ``holm_p`` (Holm-adjusted over all pairs), ``holm_significant`` (``holm_p < alpha``)
        and ``rank_biserial`` (matched-pairs rank-biserial correlation in [-1, 1], positive
        when a scores higher).
    """

    n_blocks: int
    n_methods: int
    alpha: float
    friedman_statistic: float
    friedman_p: float
    iman_davenport_statistic: float
    iman_davenport_p: float
    critical_difference: float
    ranks: pd.DataFrame
    pairs: pd.DataFrame

    def cd_groups(self) -> list[tuple[str, ...]]:
        """The bars of the critical-difference diagram: maximal runs of two or more methods,
        in rank order, whose first and last average ranks differ by at most the CD."""
        names = list(self.ranks["method"])
        rank = self.ranks["average_rank"].to_numpy()
        groups, furthest = [], 0
        for i in range(len(names)):
            j = i
            while j + 1 < len(names) and rank[j + 1] - rank[i] <= self.critical_difference:
                j += 1
            if j > i and j > furthest:  # a run ending where an earlier one ended lies inside it
                groups.append(tuple(names[i:j + 1]))
                furthest = j
        return groups

    def cd_table(self) -> pd.DataFrame:
        """The numbers of the critical-difference diagram, one row per method in rank order:
        ``method``, ``average_rank``, ``critical_difference``, ``groups`` (1-based numbers of
        the :meth:`cd_groups` bars the method belongs to, ";"-joined; "" for none)."""
        member_of = {name: [] for name in self.ranks["method"]}
        for number, group in enumerate(self.cd_groups(), start=1):
            for name in group:
                member_of[name].append(str(number))
        return pd.DataFrame({
            "method": self.ranks["method"].to_numpy(),
            "average_rank": self.ranks["average_rank"].to_numpy(),
            "critical_difference": self.critical_difference,
            "groups": [";".join(member_of[name]) for name in self.ranks["method"]],
        })


def critical_difference(n_methods: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of average ranks, ``q_alpha * sqrt(k (k + 1) / (6 N))``,
    with ``q_alpha`` the studentized range quantile (k groups, infinite df) over sqrt(2)."""
    q_alpha = stats.studentized_range.ppf(1 - alpha, n_methods, np.inf) / math.sqrt(2)
    return float(q_alpha * math.sqrt(n_methods * (n_methods + 1) / (6 * n_blocks)))


def compare_methods(scores: pd.DataFrame, *, alpha: float = 0.05) -> MethodComparison:
    """Friedman, Nemenyi and pairwise Wilcoxon-Holm over a matrix of scores.

    Parameters
    ----------
    scores : DataFrame, shape (N blocks, k methods)
        One row per block (image), one column per method (the column names name the
        methods), finite scores, higher is better. Needs N >= 2 and k >= 3 (Friedman's
        test is not defined for two methods; compare two with the pairs' Wilcoxon test).
    alpha : float, default 0.05
        Significance level, in (0, 1).

    Returns
    -------
    MethodComparison
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    n_blocks, n_methods = scores.shape
    if n_methods < 3 or n_blocks < 2:
        raise ValueError(f"need at least 3 methods and 2 blocks, got {n_methods} methods and {n_blocks} blocks")
    values = scores.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite (drop incomplete blocks first)")
    names = [str(c) for c in scores.columns]

    friedman = stats.friedmanchisquare(*values.T)
    chi2 = float(friedman.statistic)
    id_denominator = n_blocks * (n_methods - 1) - chi2
    if id_denominator > 0:
        f_f = (n_blocks - 1) * chi2 / id_denominator
        f_p = float(stats.f.sf(f_f, n_methods - 1, (n_methods - 1) * (n_blocks - 1)))
    else:
        f_f = f_p = math.nan

    block_ranks = np.stack([average_ranks(-row) for row in values])  # (N, k), rank 1 = highest score
    ranks = pd.DataFrame({"method": names, "average_rank": block_ranks.mean(axis=0),
                          "mean_score": values.mean(axis=0)})
    ranks = ranks.sort_values(["average_rank", "method"], kind="stable").reset_index(drop=True)
    cd = critical_difference(n_methods, n_blocks, alpha)

    # scikit-posthocs ranks ascending; Nemenyi's p depends only on |rank differences|, so the same
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(values)
    nemenyi.index = nemenyi.columns = names
    column = {name: j for j, name in enumerate(names)}
    average = dict(zip(ranks["method"], ranks["average_rank"]))
    rows = []
    for a, b in itertools.combinations(ranks["method"], 2):
        x, y = values[:, column[a]], values[:, column[b]]
        wilcoxon = stats.wilcoxon(x, y, zero_method=ZERO_METHOD)
        rows.append({"method_a": a, "method_b": b, "rank_difference": average[b] - average[a],
                     "mean_difference": float(np.mean(x - y)), "nemenyi_p": float(nemenyi.loc[a, b]),
                     "wilcoxon_statistic": float(wilcoxon.statistic), "wilcoxon_p": float(wilcoxon.pvalue),
                     "rank_biserial": rank_biserial(x - y)})
    pairs = pd.DataFrame(rows)
    pairs["nemenyi_significant"] = pairs["nemenyi_p"] < alpha
    pairs["holm_p"] = holm_adjust(pairs["wilcoxon_p"].to_numpy())
    pairs["holm_significant"] = pairs["holm_p"] < alpha
    return MethodComparison(n_blocks=n_blocks, n_methods=n_methods, alpha=alpha, friedman_statistic=chi2,
                            friedman_p=float(friedman.pvalue), iman_davenport_statistic=f_f,
                            iman_davenport_p=f_p, critical_difference=cd, ranks=ranks, pairs=pairs[PAIR_COLUMNS])


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (shape (m,), input order) of m tests, by statsmodels:
    the i-th smallest p times (m - i + 1), made non-decreasing in that order and capped at 1.
    A test is rejected at family-wise level alpha when its adjusted p-value is below alpha."""
    return multipletests(np.asarray(p_values, dtype=np.float64), method="holm")[1]


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (shape (N,)), in [-1, 1].

    ``(R+ - R-) / (R+ + R-)`` with R+ and R- the sums of the average ranks of ``|d|`` over
    positive and negative differences; zero differences are ranked too and split evenly
    between R+ and R-, as the Wilcoxon test's ``zsplit`` counts them. 0 when all are zero.
    """
    d = np.asarray(differences, dtype=np.float64)
    r = average_ranks(np.abs(d))
    r_plus = r[d > 0].sum() + r[d == 0].sum() / 2
    total = r.sum()  # N (N + 1) / 2
    return float((2 * r_plus - total) / total)


@dataclass(frozen=True)
class SeedComparison:
    """:func:`compare_methods` once per seed and once over every seed's images together.

    Attributes
    ----------
    per_seed : dict of int to MethodComparison
        Blocks are the images of that seed, by seed in ascending order.
    pooled : MethodComparison
        Blocks are the (seed, image) pairs of every seed.
    seed_counts : DataFrame
        One row per pair of methods, in the order of ``pooled.pairs``: ``method_a``,
        ``method_b``, ``n_seeds`` (seeds compared), ``n_holm_significant`` and
        ``n_nemenyi_significant`` (seeds in which the pair differs significantly by
        Wilcoxon-Holm and by Nemenyi, at the comparisons' alpha).
    """

    per_seed: dict[int, MethodComparison]
    pooled: MethodComparison
    seed_counts: pd.DataFrame


def block_matrix(table: pd.DataFrame, *, score: str = "tko", methods: list[str] | None = None) -> pd.DataFrame:
    """Tidy rows to a matrix of blocks x methods.

    Parameters
    ----------
    table : DataFrame
        One row per (block, method) with columns ``method`` and ``score``; every other
        column of ``seed, split, class, image_id`` it has keys the block (``class`` too,
        as MVTec reuses file names across defect folders).
    score : str, default "tko"
        The score column, higher is better.
    methods : list of str, optional
        The methods to keep, in this column order; default every method, by name.

    Returns
    -------
    DataFrame, shape (blocks, methods)
        Index the block key, one column per method. Blocks where a method has no finite
        score (defect-free images, or a method missing) are dropped: Friedman's test
        needs every method on every block.

    Raises
    ------
    ValueError
        If a block has two rows for one method, or a named method is absent.
    """
    key = [c for c in ("seed", "split", "class", "image_id") if c in table.columns]
    present = sorted(table["method"].unique())
    methods = present if methods is None else list(methods)
    absent = sorted(set(methods) - set(present))
    if absent:
        raise ValueError(f"methods {absent} have no rows")
    rows = table[table["method"].isin(methods)]
    if rows.duplicated(key + ["method"]).any():
        raise ValueError("a block has more than one row for a method")
    matrix = rows.pivot(index=key, columns="method", values=score).reindex(columns=methods)
    return matrix[np.isfinite(matrix.to_numpy(dtype=np.float64)).all(axis=1)]


def compare_over_seeds(table: pd.DataFrame, *, score: str = "tko", methods: list[str] | None = None,
                       alpha: float = 0.05, include_misclassified: bool = False) -> SeedComparison:
    """Significance of the methods' differences per seed and pooled over seeds.

    Parameters
    ----------
    table : DataFrame
        Tidy scores of one split, one row per (seed, image, method), with columns ``seed,
        split, image_id, method``, ``score`` and (unless ``include_misclassified``)
        ``correct``; ``class`` joins the image key when present.
    score : str, default "tko"
        The score column, higher is better.
    methods : list of str, optional
        The methods to compare (at least 3); default every method in the table.
    alpha : float, default 0.05
        Significance level of every comparison.
    include_misclassified : bool, default False
        By default only rows with ``correct == True`` count, as for the win rates.

    Returns
    -------
    SeedComparison

    Raises
    ------
    ValueError
        If a column is missing, the table holds more than one split, or as
        :func:`block_matrix` and :func:`compare_methods` raise.
    """
    missing = [c for c in (*_REQUIRED_COLUMNS, score, *([] if include_misclassified else ["correct"]))
               if c not in table.columns]
    if missing:
        raise ValueError(f"compare_over_seeds table lacks columns {missing}")
    if table["split"].nunique() != 1:
        raise ValueError(f"compare one split at a time, got {sorted(table['split'].unique())}")
    rows = table if include_misclassified else table[table["correct"].eq(True)]
    matrix = block_matrix(rows, score=score, methods=methods)
    seeds = matrix.index.get_level_values("seed")
    per_seed = {int(seed): compare_methods(matrix[seeds == seed], alpha=alpha) for seed in sorted(seeds.unique())}
    pooled = compare_methods(matrix, alpha=alpha)

    counts = pooled.pairs[["method_a", "method_b"]].copy()
    unordered = [frozenset(p) for p in zip(counts["method_a"], counts["method_b"])]
    for column, flag in (("n_holm_significant", "holm_significant"), ("n_nemenyi_significant", "nemenyi_significant")):
        hits = {pair: 0 for pair in unordered}
        for result in per_seed.values():
            for a, b, significant in zip(result.pairs["method_a"], result.pairs["method_b"], result.pairs[flag]):
                hits[frozenset((a, b))] += bool(significant)
        counts[column] = [hits[pair] for pair in unordered]
    counts.insert(2, "n_seeds", len(per_seed))
    return SeedComparison(per_seed=per_seed, pooled=pooled, seed_counts=counts)
