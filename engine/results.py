"""Read-only access to evaluation results and training histories, for summary views.

Only pandas, numpy and json are used here (no torch), so the dashboard can import this
module without loading a deep-learning stack. Nothing in this module writes files.

The evaluate command writes into ``<models>/results/``:

- ``tko_table.csv``: one row per (seed, split, image, method) with tko, chance, lift, iou,
  rank, win_share and the image's prediction;
- ``win_rates.csv``: win rate per (seed, split, class or "overall", method);
- ``summary.json``: across-seed summaries (mean, std, bootstrap interval);
- ``agreement.csv``, ``faithfulness.csv``, ``sanity.csv``: the optional analyses
  (``--metrics agreement faithfulness sanity``), one row per image and method pair, per
  image and method, and per image, method and randomized stage;
- ``per_seed/seed_<n>_<split>.json``: which weights produced each unit's rows.

Training histories come from the checkpoint metadata (``seed_<n>.json``, key ``history``).

``topk_pixels`` also lives here: a pure numpy function that sorts every pixel of one map
into hit / miss / false alarm / tied-at-the-cut-off, for the per-image picture. It uses
the same tie rule as :mod:`engine.metrics` (fractional credit at the cut-off), so the
picture and the printed TKO always agree.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .metrics import scores, win_rates
from .metrics.scores import LOCALISATION_SCORES

__all__ = [
    "HISTORY_METRICS", "Results", "TopKPixels", "load_results", "stale_seeds", "history_frame",
    "history_bands", "confusion_matrix", "defect_rows", "tko_stats", "win_rate_stats", "topk_pixels",
    "AGREEMENT_STATS", "localisation_win_rates", "agreement_stats", "faithfulness_stats",
    "sanity_stats",
    "PIXEL_OTHER", "PIXEL_HIT", "PIXEL_MISS", "PIXEL_FALSE_ALARM", "PIXEL_TIED_IN", "PIXEL_TIED_OUT",
]

RESULTS_SUBDIR = "results"
ANALYSIS_FILES = ("agreement", "faithfulness", "sanity")
# Columns of tko_table.csv that can decide who wins an image (higher is better), with their names.
# Columns of agreement.csv: how alike two methods' maps are.
AGREEMENT_STATS = ("pearson", "spearman", "top_iou")
HISTORY_METRICS = ("train_loss", "val_loss", "test_loss", "val_balanced_accuracy", "test_balanced_accuracy")
OVERALL = "overall"
CHANCE = "chance"

# Codes of the top-K picture.
PIXEL_OTHER, PIXEL_HIT, PIXEL_MISS, PIXEL_FALSE_ALARM, PIXEL_TIED_IN, PIXEL_TIED_OUT = range(6)


class ResultsError(ValueError):
    """A result file exists but cannot be read; the message names it."""


@dataclass(frozen=True)
class Results:
    """The evaluation tables of one results folder; missing files are ``None``."""

    directory: Path
    tko: pd.DataFrame | None = None
    win_rates: pd.DataFrame | None = None
    summary: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()
    provenance: dict[int, dict[str, Any]] = field(default_factory=dict)
    analyses: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table, when present
    # name -> the distinct settings its per-seed sidecars record (e.g. agreement's top share)
    settings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def scores(self) -> list[str]:
        """Localisation scores present in the main table (TKO first)."""
        if self.tko is None:
            return []
        return [c for c in LOCALISATION_SCORES if c in self.tko.columns and self.tko[c].notna().any()]

    @property
    def available(self) -> bool:
        return self.tko is not None and self.win_rates is not None

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.tko["seed"].unique()) if self.tko is not None else []

    @property
    def splits(self) -> list[str]:
        if self.tko is None:
            return []
        return [s for s in ("train", "test") if s in set(self.tko["split"])]

    def seed_rows(self, seed: int) -> pd.DataFrame:
        """The table rows of one seed (empty frame when there are none)."""
        if self.tko is None:
            return pd.DataFrame()
        return self.tko[self.tko["seed"] == seed].reset_index(drop=True)


def results_dir(models_dir: Path | str) -> Path:
    return Path(models_dir) / RESULTS_SUBDIR


def _bool_column(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


def _read_csv(path: Path, required: Sequence[str], problems: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        problems.append(f"{path}: unreadable ({exc.__class__.__name__}); rerun `pixel-evidence evaluate --force`")
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        problems.append(f"{path}: missing columns {missing}; rerun `pixel-evidence evaluate --force`")
        return None
    return df


def load_results(directory: Path | str) -> Results:
    """Read ``tko_table.csv``, ``win_rates.csv``, ``summary.json`` and the per-seed sidecars.

    Missing files give ``None`` fields; unreadable ones are listed in ``problems`` (never
    raised), so a view can say what is wrong and keep showing the rest.
    """
    directory = Path(directory)
    problems: list[str] = []
    tko = _read_csv(directory / "tko_table.csv",
                    ["seed", "split", "image_id", "class", "predicted", "correct", "method", "tko", "chance"],
                    problems)
    if tko is not None:
        tko["correct"] = _bool_column(tko["correct"])
        tko["seed"] = tko["seed"].astype(int)
    rates = _read_csv(directory / "win_rates.csv", ["seed", "split", "class", "method", "win_rate", "n_images"],
                      problems)
    if rates is not None:
        rates["seed"] = rates["seed"].astype(int)
    summary = None
    if (directory / "summary.json").is_file():
        try:
            summary = json.loads((directory / "summary.json").read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            problems.append(f"{directory / 'summary.json'}: unreadable ({exc.__class__.__name__})")
    provenance: dict[int, dict[str, Any]] = {}
    for side in sorted((directory / "per_seed").glob("seed_*.json")):
        # seed_<n>_<split>.json (the main table of a unit); analysis sidecars have a further suffix
        match = re.fullmatch(r"seed_(-?\d+)_(train|test)", side.stem)
        if match is None:
            continue
        try:
            provenance.setdefault(int(match.group(1)), json.loads(side.read_text()))
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            problems.append(f"{side}: unreadable")
    analyses = {}
    for name in ANALYSIS_FILES:
        df = _read_csv(directory / f"{name}.csv", ["seed", "split", "image_id"], problems)
        if df is not None:
            if "correct" in df:
                df["correct"] = _bool_column(df["correct"])
            for col in ("final", "passed"):
                if col in df:
                    df[col] = _bool_column(df[col])
            analyses[name] = df
    settings = {name: _analysis_settings(directory, name, problems) for name in analyses}
    return Results(directory, tko, rates, summary, tuple(problems), provenance, analyses, settings)


def _analysis_settings(directory: Path, name: str, problems: list[str]) -> list[dict[str, Any]]:
    """Distinct ``settings`` recorded in one analysis's per-seed sidecars."""
    out: list[dict[str, Any]] = []
    for side in sorted((directory / "per_seed").glob(f"seed_*.{name}.json")):
        try:
            settings = json.loads(side.read_text()).get("settings") or {}
        except (json.JSONDecodeError, OSError, UnicodeDecodeError, AttributeError):
            problems.append(f"{side}: unreadable")
            continue
        if settings not in out:
            out.append(settings)
    return out


def stale_seeds(results: Results, metas: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Seeds in the results whose recorded weights differ from the current checkpoints.

    A seed without a sidecar is not reported (nothing to compare); a seed whose model is
    gone is reported, since its rows no longer describe an available model.
    """
    out = []
    for seed in results.seeds:
        meta = metas.get(seed)
        prov = results.provenance.get(seed)
        if meta is None:
            out.append(seed)
        elif prov is not None and prov.get("weights_sha256") != meta.get("weights_sha256"):
            out.append(seed)
    return out


# ----------------------------------------------------------------------------- histories


def history_frame(metas: Mapping[int, Mapping[str, Any]]) -> pd.DataFrame:
    """Long table ``seed, epoch, metric, value`` from each checkpoint's ``history``."""
    rows = []
    for seed, meta in metas.items():
        for entry in meta.get("history", []) or []:
            epoch = entry.get("epoch")
            if epoch is None:
                continue
            for metric in HISTORY_METRICS:
                value = entry.get(metric)
                if value is not None and isinstance(value, (int, float)) and math.isfinite(value):
                    rows.append({"seed": int(seed), "epoch": int(epoch), "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["seed", "epoch", "metric", "value"])


def history_bands(history: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (metric, epoch).

    Columns ``metric, epoch, mean, std, n_seeds``; ``std`` is the sample standard deviation
    (ddof=1), 0 for a single seed so a band collapses to the line instead of vanishing.
    """
    cols = ["metric", "epoch", "mean", "std", "n_seeds"]
    if history.empty:
        return pd.DataFrame(columns=cols)
    g = history.groupby(["metric", "epoch"])["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out[cols].sort_values(["metric", "epoch"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- result tables


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
    (see :func:`engine.metrics.win_rates`; ties split the win)."""
    return win_rates(tko, include_misclassified=include_misclassified, score=scores.score(score).key)


def _mean_std(df: pd.DataFrame, keys: list[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of ``values`` per ``keys``, with image and seed counts."""
    g = df.groupby(keys, sort=False)
    out = g.agg(**{f"{v}_{stat}": (v, stat) for v in values for stat in ("mean", "std")},
                n_images=("image_id", "size"), n_seeds=("seed", "nunique")).reset_index()
    return out


def agreement_stats(agreement: pd.DataFrame) -> pd.DataFrame:
    """Per split and pair of methods: mean ± std over images (all seeds pooled) of Pearson,
    Spearman and top-share IoU. Columns ``split, method_a, method_b, <metric>_mean/_std, n_images, n_seeds``."""
    values = ("pearson", "spearman", "top_iou")
    if agreement.empty:
        return pd.DataFrame(columns=["split", "method_a", "method_b", *[f"{v}_{s}" for v in values
                                                                          for s in ("mean", "std")],
                                     "n_images", "n_seeds"])
    return _mean_std(agreement, ["split", "method_a", "method_b"], values)


def faithfulness_stats(faithfulness: pd.DataFrame) -> pd.DataFrame:
    """Per split, start image and method: mean ± std of the deletion AUC (lower = more faithful)
    and the insertion AUC (higher = more faithful) over images, all seeds pooled."""
    values = ("deletion_auc", "insertion_auc")
    if faithfulness.empty:
        return pd.DataFrame(columns=["split", "start", "method", *[f"{v}_{s}" for v in values
                                                                  for s in ("mean", "std")], "n_images", "n_seeds"])
    return _mean_std(faithfulness, ["split", "start", "method"], values)


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


# ----------------------------------------------------------------------------- top-K picture


@dataclass(frozen=True)
class TopKPixels:
    """Classification of every pixel of one map against the defect mask.

    ``codes`` (H, W) uint8 holds PIXEL_* codes. Pixels above the cut-off value are in the
    top K outright; the ``n_tied`` pixels exactly at the cut-off share the remaining
    ``k - n_above`` slots, each counting ``tie_share`` (pixel order never decides).
    """

    codes: np.ndarray
    k: int
    n: int
    n_above: int
    n_tied: int
    tie_share: float
    hits: int          # above the cut-off and in the mask
    misses: int        # in the mask and below the cut-off
    false_alarms: int  # above the cut-off, outside the mask
    tied_in: int       # at the cut-off, in the mask
    tied_out: int      # at the cut-off, outside the mask

    @property
    def expected_hits(self) -> float:
        """Hits with fractional credit for ties: equals TKO x K."""
        return self.hits + self.tie_share * self.tied_in

    @property
    def tko(self) -> float:
        return self.expected_hits / self.k if self.k else math.nan


def topk_pixels(attribution: np.ndarray, mask: np.ndarray) -> TopKPixels:
    """Hit / miss / false-alarm / tied picture of ``attribution``'s top K (K = mask size).

    With K = 0 every pixel is ``PIXEL_OTHER``: there is no top K to draw.
    """
    a = np.asarray(attribution, dtype=np.float64)
    s = np.asarray(mask) > 0
    if a.shape != s.shape:
        raise ValueError(f"attribution shape {a.shape} does not match mask shape {s.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("attribution contains non-finite values (NaN or inf)")
    n = a.size
    k = int(np.count_nonzero(s))
    codes = np.full(a.shape, PIXEL_OTHER, dtype=np.uint8)
    if k == 0:
        return TopKPixels(codes, 0, n, 0, 0, math.nan, 0, 0, 0, 0, 0)
    v = np.partition(a.ravel(), n - k)[n - k]
    above = a > v
    tied = a == v
    g, t = int(np.count_nonzero(above)), int(np.count_nonzero(tied))
    share = (k - g) / t
    if g + t == k:  # every pixel at the cut-off value fits in the K slots: no real tie
        above, tied, g, t, share = above | tied, np.zeros_like(tied), g + t, 0, 1.0
    codes[s & ~above & ~tied] = PIXEL_MISS
    codes[s & above] = PIXEL_HIT
    codes[~s & above] = PIXEL_FALSE_ALARM
    codes[s & tied] = PIXEL_TIED_IN
    codes[~s & tied] = PIXEL_TIED_OUT

    def count(code: int) -> int:
        return int(np.count_nonzero(codes == code))

    return TopKPixels(codes, k, n, g, t, share, count(PIXEL_HIT), count(PIXEL_MISS), count(PIXEL_FALSE_ALARM),
                      count(PIXEL_TIED_IN), count(PIXEL_TIED_OUT))
