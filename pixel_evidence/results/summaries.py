"""Summary statistics of the result tables, for the summary views: confusion matrices,
TKO and win-rate statistics, and the analyses' means per method or pair of methods."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pixel_evidence.metrics import AGREEMENT_STATS, scores, win_rates

CHANCE = "chance"  # the pseudo-method whose TKO is each image's chance level K/N


def _per_image(tko: pd.DataFrame) -> pd.DataFrame:
    return tko.drop_duplicates(["seed", "split", "class", "image_id"])


def confusion_matrix(tko: pd.DataFrame, seed: int, split: str, classes: Sequence[str]) -> pd.DataFrame:
    """Counts of true class (rows) against predicted class (columns) for one seed and split.

    Every class appears in both axes, in ``classes`` order, even with zero counts.
    """
    rows = _per_image(tko[(tko["seed"] == seed) & (tko["split"] == split)])
    labels = list(classes)
    extra = sorted((set(rows["class"]) | set(rows["predicted"])) - set(labels))
    labels += extra
    mat = pd.crosstab(pd.Categorical(rows["class"], categories=labels),
                      pd.Categorical(rows["predicted"], categories=labels), dropna=False)
    mat.index.name, mat.columns.name = "true", "predicted"
    mat.index = mat.index.astype(str)
    mat.columns = mat.columns.astype(str)
    return mat.astype(int)


def defect_rows(tko: pd.DataFrame, *, with_chance: bool = True) -> pd.DataFrame:
    """Rows of rankable images (defect pixels present), optionally plus a ``chance`` pseudo-method.

    The chance rows carry each image's K/N as its ``tko``: what a random map would score on
    that image, so a plot can show the baseline beside the methods.
    """
    rows = tko[tko["tko"].notna()].copy()
    if with_chance and not rows.empty:
        chance = _per_image(rows).copy()
        chance["method"] = CHANCE
        chance["tko"] = chance["chance"]
        for col in ("lift",):
            if col in chance:
                chance[col] = 1.0
        for col in ("iou", "rank", "win_share"):
            if col in chance:
                chance[col] = np.nan
        rows = pd.concat([rows, chance], ignore_index=True)
    return rows


def tko_stats(tko: pd.DataFrame) -> pd.DataFrame:
    """Per split and method over rankable images: count, mean, median, quartiles of TKO,
    mean chance level and mean lift. Includes the ``chance`` pseudo-method."""
    rows = defect_rows(tko)
    cols = ["split", "method", "n", "mean_tko", "median_tko", "q25_tko", "q75_tko", "mean_chance"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    g = rows.groupby(["split", "method"])
    out = g.agg(n=("tko", "size"), mean_tko=("tko", "mean"), median_tko=("tko", "median"),
                q25_tko=("tko", lambda s: s.quantile(0.25)), q75_tko=("tko", lambda s: s.quantile(0.75)),
                mean_chance=("chance", "mean")).reset_index()
    if "lift" in rows:
        out = out.merge(g["lift"].mean().rename("mean_lift").reset_index(), on=["split", "method"])
        cols.append("mean_lift")
    return out[cols]


def win_rate_stats(rates: pd.DataFrame) -> pd.DataFrame:
    """Across-seed summary of ``win_rates.csv``: mean, std (ddof=1), min, max, seeds counted
    and the mean number of images per seed behind each rate."""
    cols = ["split", "class", "method", "mean", "std", "min", "max", "n_seeds", "images_per_seed"]
    if rates.empty:
        return pd.DataFrame(columns=cols)
    valid = rates[rates["win_rate"].notna()]
    g = valid.groupby(["split", "class", "method"])
    out = g.agg(mean=("win_rate", "mean"), std=("win_rate", "std"), min=("win_rate", "min"),
                max=("win_rate", "max"), n_seeds=("win_rate", "size"),
                images_per_seed=("n_images", "mean")).reset_index()
    return out[cols]


def localisation_win_rates(tko: pd.DataFrame, score: str = "tko", *,
                           include_misclassified: bool = False) -> pd.DataFrame:
    """Win rates per seed, split and class when ``score`` decides who wins an image
    (see :func:`pixel_evidence.metrics.win_rates`; ties split the win)."""
    return win_rates(tko, include_misclassified=include_misclassified, score=scores.score(score).key)


def _mean_std(df: pd.DataFrame, keys: list[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of ``values`` per ``keys``, with image and seed counts.

    Columns ``<keys>, <value>_mean, <value>_std (each value), n_images, n_seeds``; an empty
    ``df`` gives an empty frame with these columns.
    """
    if df.empty:
        return pd.DataFrame(columns=[*keys, *[f"{v}_{stat}" for v in values for stat in ("mean", "std")],
                                     "n_images", "n_seeds"])
    g = df.groupby(keys, sort=False)
    return g.agg(**{f"{v}_{stat}": (v, stat) for v in values for stat in ("mean", "std")},
                 n_images=("image_id", "size"), n_seeds=("seed", "nunique")).reset_index()


def agreement_stats(agreement: pd.DataFrame) -> pd.DataFrame:
    """Per split and pair of methods: mean ± std over images (all seeds pooled) of Pearson,
    Spearman and top-share IoU. Columns ``split, method_a, method_b, <metric>_mean/_std, n_images, n_seeds``."""
    return _mean_std(agreement, ["split", "method_a", "method_b"], AGREEMENT_STATS)


def faithfulness_stats(faithfulness: pd.DataFrame) -> pd.DataFrame:
    """Per split, start image and method: mean ± std of the deletion AUC (lower = more faithful)
    and the insertion AUC (higher = more faithful) over images, all seeds pooled."""
    return _mean_std(faithfulness, ["split", "start", "method"], ("deletion_auc", "insertion_auc"))


def sanity_stats(sanity: pd.DataFrame) -> pd.DataFrame:
    """Per split and method, from the fully randomized stage: images checked, how many passed
    (the map no longer resembles the trained model's), mean final Spearman and top-share IoU."""
    cols = ["split", "method", "n_images", "n_passed", "pass_rate", "final_spearman_mean", "final_top_iou_mean",
            "n_seeds"]
    final = sanity[sanity["final"]] if not sanity.empty else sanity
    if final.empty:
        return pd.DataFrame(columns=cols)
    g = final.groupby(["split", "method"], sort=False)
    out = g.agg(n_images=("image_id", "size"), n_passed=("passed", "sum"),
                final_spearman_mean=("spearman", "mean"), final_top_iou_mean=("top_iou", "mean"),
                n_seeds=("seed", "nunique")).reset_index()
    out["n_passed"] = out["n_passed"].astype(int)
    out["pass_rate"] = out["n_passed"] / out["n_images"]
    return out[cols]
