"""Win rates over a table of per-image scores, and their spread over seeds.

A win rate is the share of images a method wins (see :func:`.ranking.win_shares`), per
seed, split and class, plus an ``"overall"`` row over all classes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

OVERALL = "overall"  # the class name of the all-classes aggregate
_TABLE_COLUMNS = ("seed", "split", "image_id", "class", "correct", "method")
# An image is identified by its class as well as its id, because datasets
# such as MVTec reuse file names ("000.png") across defect folders.
_IMAGE_KEY = ["seed", "split", "class", "image_id"]


def win_rates(table: pd.DataFrame, *, include_misclassified: bool = False, score: str = "tko") -> pd.DataFrame:
    """Fraction of images each method wins, per seed, split and class.

    Parameters
    ----------
    table : DataFrame
        Tidy scores, one row per ``(seed, split, image_id, method)``, with at
        least the columns ``seed, split, image_id, class, correct, method``
        and ``score``.  An image is keyed by ``(seed, split, class, image_id)``.
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
        on and ``win_rate`` the sum of its :func:`.ranking.win_shares` over them
        divided by ``n_images``.  Rows with ``nan`` score (defect-free images)
        are dropped first, so a class left without images gets
        ``n_images == 0`` and ``win_rate == nan`` instead of disappearing.

    Raises
    ------
    ValueError
        If a column is missing, an image has two rows for one method, a
        class is literally named ``"overall"``, or (unless
        ``include_misclassified``) a scored row's ``correct`` is not True or False.
    """
    missing = [c for c in (*_TABLE_COLUMNS, score) if c not in table.columns]
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
        _check_booleans(rows["correct"])
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


def _check_booleans(correct: pd.Series) -> None:
    # ``eq(True)`` is False for the strings "True"/"False" (a CSV read with another dtype):
    # every image would silently drop out and every win rate become nan.
    odd = correct[~correct.isin([True, False])]
    if len(odd):
        raise ValueError(f"win_rates needs a boolean 'correct' column (True/False), got {odd.iloc[0]!r} "
                         f"({type(odd.iloc[0]).__name__})")


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
