"""Pixel-level scores for attribution maps and the rankings built on them.

Every per-image metric takes an ``attribution`` map and a ground-truth
defect ``mask`` of the same shape (normally ``(H, W)``, but any shape works
because both are flattened).  The defect region is ``S = mask > 0`` and
``K = |S|`` is its size in pixels; ``N`` is the total number of pixels.

Images without a defect (``K == 0``, e.g. "good" samples) have no region to
hit, so every metric returns ``nan`` for them rather than a misleading 0 or
1.  Downstream ranking treats ``nan`` as "this image cannot be ranked".

The top-K scores are computed as exact rationals and rounded once to float,
so two maps with the same overlap always produce bit-identical floats.  The
ranking helpers rely on this to compare scores with plain ``==``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import pandas as pd

__all__ = [
    "top_k_overlap",
    "chance_level",
    "lift",
    "top_k_iou",
    "localisation_scores",
    "pointing_game",
    "relevance_mass",
    "auroc",
    "rank_methods",
    "win_shares",
    "win_rates",
    "summarize_over_seeds",
    "pearson",
    "spearman",
    "top_fraction_membership",
    "top_fraction_iou",
    "agreement",
    "curve_auc",
    "SANITY_PASS_THRESHOLD",
]

OVERALL = "overall"
_TABLE_COLUMNS = ("seed", "split", "image_id", "class", "correct", "method", "tko")
# An image is identified by its class as well as its id, because datasets
# such as MVTec reuse file names ("000.png") across defect folders.
_IMAGE_KEY = ["seed", "split", "class", "image_id"]


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------


def _prepare(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate a map/mask pair and return them flattened.

    Returns ``(a, s)``: ``a`` is a float64 vector of the attribution values,
    ``s`` the boolean vector ``mask > 0``, both of length ``N``.

    Raises ``ValueError`` if the shapes differ or either array holds NaN/inf.
    """
    a = np.asarray(attribution, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if a.shape != m.shape:
        raise ValueError(
            f"attribution shape {a.shape} does not match mask shape {m.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("attribution contains non-finite values (NaN or inf)")
    if not np.all(np.isfinite(m)):
        raise ValueError("mask contains non-finite values (NaN or inf)")
    return a.ravel(), m.ravel() > 0


def _top_k_intersection(a: np.ndarray, s: np.ndarray) -> Fraction | None:
    """Tie-aware size of TopK(a) ∩ S as an exact fraction; None when K == 0.

    With ``v`` the K-th largest value, the ``g`` pixels above ``v`` are taken
    outright and the ``t`` pixels equal to ``v`` share the ``K - g`` remaining
    slots, each counting ``(K - g) / t``.  This equals the expected overlap
    under a uniformly random tie-break, so it does not depend on pixel order.
    Runs in O(N): ``np.partition`` finds ``v`` without sorting.
    """
    n = a.size
    k = int(np.count_nonzero(s))
    if k == 0:
        return None
    v = np.partition(a, n - k)[n - k]
    above = a > v
    tied = a == v
    g = int(np.count_nonzero(above))
    t = int(np.count_nonzero(tied))
    hits_above = int(np.count_nonzero(above & s))
    hits_tied = int(np.count_nonzero(tied & s))
    return hits_above + Fraction((k - g) * hits_tied, t)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of a flat array; tied values share the centre of their block."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def _lift(tko: float, k: int, n: int) -> float:
    # tko / (k / n); shared so lift() and localisation_scores() agree bitwise.
    return tko * n / k if k else math.nan


# ---------------------------------------------------------------------------
# Per-image localisation metrics
# ---------------------------------------------------------------------------


def top_k_overlap(attribution, mask) -> float:
    """Top-K overlap: share of the defect's K pixels found among the K highest.

    Parameters
    ----------
    attribution : array-like, shape (H, W)
        Attribution map; any finite real values.
    mask : array-like, shape (H, W)
        Ground truth; pixels with ``mask > 0`` form the defect region S.

    Returns
    -------
    float
        ``|TopK(a) ∩ S| / K`` in [0, 1] with fractional credit for ties at
        the cut-off (see ``_top_k_intersection``).  A constant map scores
        exactly ``K / N``; ``K == N`` scores 1.0; ``K == 0`` gives ``nan``.

    Raises
    ------
    ValueError
        If the shapes differ or an input contains NaN/inf.
    """
    a, s = _prepare(attribution, mask)
    inter = _top_k_intersection(a, s)
    if inter is None:
        return math.nan
    return float(inter / int(np.count_nonzero(s)))


def chance_level(mask) -> float:
    """Expected top-K overlap of a random map: ``K / N``; ``nan`` if K == 0.

    ``mask`` is any array whose positive entries mark the defect region.
    """
    s = np.asarray(mask, dtype=np.float64).ravel() > 0
    k = int(np.count_nonzero(s))
    return k / s.size if k else math.nan


def lift(tko: float, mask) -> float:
    """How many times better than chance a top-K overlap is: ``tko / (K / N)``.

    1.0 means no better than a random map; the maximum is ``N / K``.
    Returns ``nan`` if K == 0 or ``tko`` is ``nan``.
    """
    s = np.asarray(mask, dtype=np.float64).ravel() > 0
    return _lift(tko, int(np.count_nonzero(s)), s.size)


def top_k_iou(attribution, mask) -> float:
    """Intersection-over-union of the top-K pixel set with the defect region.

    Both sets have K pixels, so ``IoU = inter / (2K - inter)`` where ``inter``
    is the same tie-aware intersection used by :func:`top_k_overlap`.  This
    is the form reported in the original study.  Shapes ``(H, W)``; ``nan``
    when K == 0; raises ``ValueError`` like :func:`top_k_overlap`.
    """
    a, s = _prepare(attribution, mask)
    inter = _top_k_intersection(a, s)
    if inter is None:
        return math.nan
    k = int(np.count_nonzero(s))
    return float(inter / (2 * k - inter))


def localisation_scores(attribution, mask) -> dict[str, float | int]:
    """All top-K based scores from a single selection pass.

    Returns ``{"tko", "chance", "lift", "iou", "k", "n"}``: the values of
    :func:`top_k_overlap`, :func:`chance_level`, :func:`lift` and
    :func:`top_k_iou` (bit-identical to calling them separately), plus the
    defect size ``k`` and pixel count ``n`` as ints.  Float entries are
    ``nan`` when ``k == 0``.  Raises ``ValueError`` on bad input.
    """
    a, s = _prepare(attribution, mask)
    k, n = int(np.count_nonzero(s)), s.size
    inter = _top_k_intersection(a, s)
    if inter is None:
        nan = math.nan
        return {"tko": nan, "chance": nan, "lift": nan, "iou": nan, "k": k, "n": n}
    tko = float(inter / k)
    return {
        "tko": tko,
        "chance": k / n,
        "lift": _lift(tko, k, n),
        "iou": float(inter / (2 * k - inter)),
        "k": k,
        "n": n,
    }


def pointing_game(attribution, mask) -> float:
    """Whether the strongest pixel lands on the defect.

    Returns 1.0 or 0.0 for a unique maximum; if several pixels share the
    maximum, the fraction of them inside S (the hit chance under a random
    tie-break).  ``nan`` when K == 0.  Shapes ``(H, W)``.
    """
    a, s = _prepare(attribution, mask)
    if not s.any():
        return math.nan
    at_max = a == a.max()
    return np.count_nonzero(at_max & s) / np.count_nonzero(at_max)


def relevance_mass(attribution, mask) -> float:
    """Share of the total attribution that falls inside the defect.

    ``sum(a * S) / sum(a)`` for a non-negative map of shape ``(H, W)``.
    Returns ``nan`` if K == 0 or the map sums to 0.  Raises ``ValueError``
    if any value is negative (take ``abs`` or clip first; the ratio is not
    a share otherwise).
    """
    a, s = _prepare(attribution, mask)
    if np.any(a < 0):
        raise ValueError("relevance_mass requires a non-negative attribution map")
    total = a.sum()
    if not s.any() or total == 0:
        return math.nan
    return float(a[s].sum() / total)


def auroc(attribution, mask) -> float:
    """Area under the ROC curve of the attribution as a detector of S.

    Equals the probability that a random defect pixel scores higher than a
    random background pixel, ties counting one half (Mann-Whitney U from
    average ranks).  Returns ``nan`` if K == 0 or K == N, since one of the
    two classes is then empty.  Shapes ``(H, W)``.
    """
    a, s = _prepare(attribution, mask)
    k, n = int(np.count_nonzero(s)), s.size
    if k == 0 or k == n:
        return math.nan
    u = _average_ranks(a)[s].sum() - k * (k + 1) / 2.0
    return float(u / (k * (n - k)))


# ---------------------------------------------------------------------------
# Ranking methods on one image
# ---------------------------------------------------------------------------


def _is_nan(x: float) -> bool:
    return isinstance(x, float | np.floating) and math.isnan(x)


def rank_methods(scores: Mapping[str, float]) -> dict[str, float]:
    """Rank methods by score, 1 being the highest.

    Tied methods share the mean of the places they occupy (two tied for
    first both get 1.5, the next method gets 3).  ``nan`` scores get a
    ``nan`` rank and take no place.  Ties use exact equality (see the module
    docstring).  The result maps each input key to its rank and does not
    depend on the order of ``scores``; an empty mapping gives ``{}``.
    """
    valid = [v for v in scores.values() if not _is_nan(v)]
    ranks = {}
    for name, v in scores.items():
        if _is_nan(v):
            ranks[name] = math.nan
            continue
        higher = sum(1 for w in valid if w > v)
        equal = sum(1 for w in valid if w == v)  # includes v itself
        ranks[name] = higher + (equal + 1) / 2
    return ranks


def win_shares(scores: Mapping[str, float]) -> dict[str, float]:
    """Split one image's "win" among the methods with the best score.

    The unique best method gets 1.0; ``m`` methods tied for first get
    ``1/m`` each; every other method, including one scored ``nan``, gets 0.
    If every score is ``nan`` the image is not rankable and all shares are
    ``nan``.  Shares of a rankable image sum to 1.

    Ties use exact ``==`` on purpose: top-K overlaps are rationals rounded
    once, so equal overlaps are bit-identical, while a tolerance could merge
    genuinely different scores (on a large defect, one pixel moves TKO by
    only 1/K).
    """
    valid = [v for v in scores.values() if not _is_nan(v)]
    if not valid:
        return {name: math.nan for name in scores}
    best = max(valid)
    m = sum(1 for v in valid if v == best)
    return {
        name: (1.0 / m if not _is_nan(v) and v == best else 0.0)
        for name, v in scores.items()
    }


# ---------------------------------------------------------------------------
# Aggregation over images and seeds
# ---------------------------------------------------------------------------


def win_rates(table: pd.DataFrame, *, include_misclassified: bool = False, score: str = "tko") -> pd.DataFrame:
    """Fraction of images each method wins, per seed, split and class.

    Parameters
    ----------
    table : DataFrame
        Tidy scores, one row per ``(seed, split, image_id, method)``, with at
        least the columns ``seed, split, image_id, class, correct, method,
        tko``.  An image is keyed by ``(seed, split, class, image_id)``.
    include_misclassified : bool, default False
        By default only images with ``correct == True`` count, as in the
        original study; set True to count every image.
    score : str, default "tko"
        The column that decides who wins an image (higher is better): any
        localisation score, e.g. ``pointing``, ``relevance_mass``, ``auroc``.

    Returns
    -------
    DataFrame
        Columns ``seed, split, class, method, win_rate, n_images``; one row
        for every ``(seed, split)`` pair in the input times every class in
        the input plus ``"overall"`` times every method in the input.
        ``n_images`` is the number of rankable images the method was scored
        on and ``win_rate`` the sum of its :func:`win_shares` over them
        divided by ``n_images``.  Rows with ``nan`` score (defect-free images)
        are dropped first, so a class left without images gets
        ``n_images == 0`` and ``win_rate == nan`` instead of disappearing.

    Raises
    ------
    ValueError
        If a column is missing, an image has two rows for one method, or a
        class is literally named ``"overall"``.
    """
    missing = [c for c in (*_TABLE_COLUMNS[:-1], score) if c not in table.columns]
    if missing:
        raise ValueError(f"win_rates table lacks columns {missing}")
    duplicated = table.duplicated(_IMAGE_KEY + ["method"])
    if duplicated.any():
        first = table.loc[duplicated, _IMAGE_KEY + ["method"]].iloc[0].to_dict()
        raise ValueError(f"duplicate (image, method) rows, e.g. {first}")
    if (table["class"] == OVERALL).any():
        raise ValueError(f"class name {OVERALL!r} is reserved for the aggregate")

    out_columns = ["seed", "split", "class", "method", "win_rate", "n_images"]
    if table.empty:
        return pd.DataFrame(columns=out_columns)

    rows = table[table[score].notna()]
    if not include_misclassified:
        rows = rows[rows["correct"].eq(True)]

    # Vectorised win_shares: NaN rows are gone, so every image left is rankable.
    best = rows.groupby(_IMAGE_KEY)[score].transform("max")
    is_best = (rows[score] == best).astype(float)
    n_best = is_best.groupby([rows[c] for c in _IMAGE_KEY]).transform("sum")
    scored = rows[["seed", "split", "class", "method"]].assign(share=is_best / n_best)

    per_class = scored.groupby(["seed", "split", "class", "method"], as_index=False).agg(
        wins=("share", "sum"), n_images=("share", "size")
    )
    overall = (
        scored.groupby(["seed", "split", "method"], as_index=False)
        .agg(wins=("share", "sum"), n_images=("share", "size"))
        .assign(**{"class": OVERALL})
    )
    counts = pd.concat([per_class, overall], ignore_index=True)

    # Full grid so that empty class/method combinations stay visible.
    classes = sorted(table["class"].unique()) + [OVERALL]
    methods = sorted(table["method"].unique())
    grid = (
        table[["seed", "split"]]
        .drop_duplicates()
        .sort_values(["seed", "split"])
        .merge(pd.DataFrame({"class": classes}), how="cross")
        .merge(pd.DataFrame({"method": methods}), how="cross")
    )
    out = grid.merge(counts, on=["seed", "split", "class", "method"], how="left")
    out["n_images"] = out["n_images"].fillna(0).astype(int)
    out["win_rate"] = out["wins"] / out["n_images"].where(out["n_images"] > 0)
    return out[out_columns]


def summarize_over_seeds(
    rates: pd.DataFrame,
    *,
    n_boot: int = 10000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """Mean win rate over seeds with a percentile-bootstrap interval.

    Parameters
    ----------
    rates : DataFrame
        Output of :func:`win_rates` (columns ``seed, split, class, method,
        win_rate``), at most one row per ``(seed, split, class, method)``.
    n_boot : int, default 10000
        Bootstrap resamples of the seeds.
    confidence : float, default 0.95
        Coverage of the interval, in (0, 1).
    rng_seed : int, default 0
        Seed of the resampling; equal inputs and seed give equal output.

    Returns
    -------
    DataFrame
        One row per ``(split, class, method)`` with ``mean``, ``std``
        (ddof=1), ``ci_low``, ``ci_high`` and ``n_seeds``.  Seeds whose
        win rate is ``nan`` (no images) are left out and not counted.  With
        fewer than two seeds ``std`` and the interval are ``nan`` (a single
        value says nothing about spread); with none, ``mean`` is ``nan`` too.

    Notes
    -----
    Each bootstrap draw reweights the seeds by multinomial counts, so the
    resampled means of all groups with the same number of seeds come from one
    matrix product.  The counts are drawn from a generator seeded afresh with
    ``rng_seed`` for every seed count, so a group's interval does not depend
    on which other groups are present.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    keys = ["split", "class", "method"]
    if rates.duplicated(keys + ["seed"]).any():
        raise ValueError("rates holds more than one row per (seed, split, class, method)")

    groups = [
        (key, g["win_rate"].dropna().to_numpy(dtype=float))
        for key, g in rates.groupby(keys, sort=False)
    ]
    records = []
    for key, x in groups:
        n = x.size
        records.append({
            **dict(zip(keys, key)),
            "mean": x.mean() if n else math.nan,
            "std": x.std(ddof=1) if n > 1 else math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "n_seeds": n,
        })

    tail = (1 - confidence) / 2
    for n in {x.size for _, x in groups if x.size > 1}:
        idx = [i for i, (_, x) in enumerate(groups) if x.size == n]
        values = np.stack([groups[i][1] for i in idx])  # (groups, n)
        rng = np.random.default_rng(rng_seed)
        weights = rng.multinomial(n, np.full(n, 1 / n), size=n_boot) / n  # (n_boot, n)
        boot_means = values @ weights.T  # (groups, n_boot)
        low, high = np.quantile(boot_means, [tail, 1 - tail], axis=1)
        for j, i in enumerate(idx):
            records[i]["ci_low"], records[i]["ci_high"] = low[j], high[j]

    return pd.DataFrame(
        records, columns=keys + ["mean", "std", "ci_low", "ci_high", "n_seeds"]
    )


# ---------------------------------------------------------------------------
# Agreement between two methods' maps
# ---------------------------------------------------------------------------


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, _ = _prepare(a, np.zeros_like(np.asarray(a, dtype=np.float64)))
    y, _ = _prepare(b, np.zeros_like(np.asarray(b, dtype=np.float64)))
    if x.size != y.size:
        raise ValueError(f"maps of different sizes: {np.shape(a)} and {np.shape(b)}")
    return x, y


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / denom) if denom > 0 else math.nan


def pearson(a, b) -> float:
    """Pearson correlation of two maps of the same shape; ``nan`` if either is constant."""
    return _correlation(*_pair(a, b))


def spearman(a, b) -> float:
    """Spearman rank correlation (ties share average ranks); robust to the heavy tails of
    gradient maps. ``nan`` if either map is constant."""
    x, y = _pair(a, b)
    return _correlation(_average_ranks(x), _average_ranks(y))


def top_fraction_membership(a, fraction: float = 0.2) -> np.ndarray:
    """Weight in [0, 1] of each pixel (flattened) for being among the top ``fraction``.

    ``q = round(fraction * N)`` slots; pixels above the q-th value weigh 1, pixels tied
    at it share the remaining slots evenly (the same rule as the top-K overlap), so the
    weights sum to ``q`` and never depend on pixel order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    x, _ = _pair(a, a)
    n = x.size
    q = max(1, int(round(fraction * n)))
    v = np.partition(x, n - q)[n - q]
    above, tied = x > v, x == v
    w = above.astype(np.float64)
    w[tied] = (q - np.count_nonzero(above)) / np.count_nonzero(tied)
    return w


def top_fraction_iou(a, b, fraction: float = 0.2) -> float:
    """IoU of the top-``fraction`` pixel sets of two maps (default top 20%).

    With tie weights ``wa``, ``wb`` from :func:`top_fraction_membership` this is
    ``sum(min(wa, wb)) / sum(max(wa, wb))``, the plain set IoU when there are no ties.
    """
    _pair(a, b)
    wa, wb = top_fraction_membership(a, fraction), top_fraction_membership(b, fraction)
    return float(np.minimum(wa, wb).sum() / np.maximum(wa, wb).sum())


# Randomization check: |Spearman| between the trained model's map and the fully randomized
# model's map at or above this means the map did not depend on the learned weights.
SANITY_PASS_THRESHOLD = 0.5


def agreement(maps: Mapping[str, np.ndarray], fraction: float = 0.2) -> list[dict[str, float | str]]:
    """Pearson, Spearman and top-``fraction`` IoU for every unordered pair of methods.

    Returns rows ``{"a", "b", "pearson", "spearman", "top_iou"}`` in the order of ``maps``;
    each equals :func:`pearson`, :func:`spearman` and :func:`top_fraction_iou` of the pair.
    Each map is ranked and thresholded once, not once per pair (12 methods: 66 pairs).
    """
    keys = list(maps)
    if not keys:
        return []
    flat = {k: _pair(maps[k], maps[keys[0]])[0] for k in keys}  # also checks that the shapes agree
    ranks = {k: _average_ranks(v) for k, v in flat.items()}
    tops = {k: top_fraction_membership(v, fraction) for k, v in flat.items()}
    return [{"a": p, "b": q, "pearson": _correlation(flat[p], flat[q]), "spearman": _correlation(ranks[p], ranks[q]),
             "top_iou": float(np.minimum(tops[p], tops[q]).sum() / np.maximum(tops[p], tops[q]).sum())}
            for i, p in enumerate(keys) for q in keys[i + 1:]]


def curve_auc(fractions, values) -> float:
    """Trapezoid area under a deletion / insertion curve sampled at ``fractions`` in [0, 1]."""
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"need two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
