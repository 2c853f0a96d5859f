"""How much a stochastic method's own random seed moves its scores and the image's winner.

RISE (its masks), LIME (its samples), SmoothGrad and SmoothGrad-IG (their noise) give a
different map for every value of their ``seed`` parameter; the shipped tables hold one
draw (seed 0). Given the same images scored with several draws, this module measures:

- the spread of each stochastic method's score per image (max - min over the draws);
- where that spread exceeds the gap from the method to its nearest neighbour in the
  image's ranking, so the method's place there is not settled by its own dice;
- the image's winner under every draw (draw ``d`` swaps every stochastic method's draw-0
  score for its draw-``d`` score, the other methods' scores stay), how often it changes,
  and whether the draw-0 win is *robust* (the same winner under every draw);
- a draw-0 win whose margin over the runner-up is at most the larger of the two methods'
  spreads: a *tie within noise*. A deterministic method has no spread, so a win between
  two deterministic methods is never one.

A method's sample count (masks, samples, noise copies) is stable when two draws agree to
:data:`STABLE_PEARSON` and :data:`STABLE_TKO_CHANGE` at the median image (:func:`count_curve`).

Winners are decided as everywhere else (:func:`.ranking.win_shares`): the highest score
wins, exact ties share the win. Only images on which every method has a finite score count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TIE_JOIN = "+"  # joins the keys of methods tied for first
# A sample count is stable when two draws' maps agree this well at the median image: the
# tolerance the project holds any change of a shipped map to.
STABLE_PEARSON = 0.99
STABLE_TKO_CHANGE = 0.005


def draw_spread(draws: pd.DataFrame, *, score: str = "tko") -> pd.DataFrame:
    """Per image and stochastic method: its score over the draws.

    ``draws`` has one row per (image_id, method, draw) with column ``score``. Returns one row
    per (image_id, method): ``n_draws``, ``mean``, ``min``, ``max``, ``spread`` (max - min)
    and ``std`` (sample standard deviation, ddof 1).
    """
    grouped = draws.groupby(["image_id", "method"], sort=True)[score]
    out = grouped.agg(n_draws="count", mean="mean", min="min", max="max", std="std").reset_index()
    out["spread"] = out["max"] - out["min"]
    return out[["image_id", "method", "n_draws", "mean", "min", "max", "spread", "std"]]


def _field_matrix(field: pd.DataFrame, score: str) -> pd.DataFrame:
    """images x methods of the draw-0 scores; only images where every method has a finite score."""
    matrix = field.pivot_table(index="image_id", columns="method", values=score, aggfunc="first")
    return matrix[np.isfinite(matrix).all(axis=1)].sort_index()


def _draw_matrices(field: pd.DataFrame, draws: pd.DataFrame, score: str) -> dict[int, pd.DataFrame]:
    """``{draw: images x methods}``: the field with every stochastic method's score of that draw."""
    base = _field_matrix(field, score)
    stochastic = sorted(draws["method"].unique())
    missing = [m for m in stochastic if m not in base.columns]
    if missing:
        raise ValueError(f"the field has no scores of {', '.join(missing)}")
    out = {}
    for draw, rows in draws.groupby("draw", sort=True):
        swapped = rows.pivot_table(index="image_id", columns="method", values=score, aggfunc="first")
        matrix = base.copy()
        matrix[stochastic] = swapped.reindex(index=base.index, columns=stochastic)
        if matrix.isna().any().any():
            lacking = matrix.index[matrix.isna().any(axis=1)][:3].tolist()
            raise ValueError(f"draw {draw} lacks scores for images such as {lacking}")
        out[int(draw)] = matrix
    return out


def _winners(row: pd.Series) -> str:
    best = row.max()
    return TIE_JOIN.join(sorted(row.index[row == best]))


@dataclass(frozen=True)
class NoiseMargin:
    """One image's lead: ``winners`` and ``runners_up`` (keys, sorted; several when tied),
    ``margin`` (the winner's score minus the runner-up's; 0 when first place is tied),
    ``band`` (the largest spread among the winner and the runner-up, or among the tied winners)."""

    winners: tuple[str, ...]
    runners_up: tuple[str, ...]
    margin: float
    band: float

    @property
    def tie_within_noise(self) -> bool:
        """The lead is no larger than the methods' own noise (and there is noise)."""
        return self.band > 0 and self.margin <= self.band


def noise_margin(scores: Mapping[str, float], spreads: Mapping[str, float]) -> NoiseMargin:
    """The lead on one image from its methods' ``scores`` (finite) and the stochastic ones'
    ``spreads`` (a method not in ``spreads`` is deterministic: spread 0)."""
    best = max(scores.values())
    winners = tuple(sorted(m for m, v in scores.items() if v == best))
    others = {m: v for m, v in scores.items() if m not in winners}
    second = max(others.values(), default=math.nan)
    runners_up = tuple(sorted(m for m, v in others.items() if v == second))
    tied = len(winners) > 1
    margin = 0.0 if tied or not others else float(best - second)
    involved = winners if tied else winners + runners_up
    band = max((float(spreads.get(m, 0.0)) for m in involved), default=0.0)
    return NoiseMargin(winners, runners_up, margin, band)


def winner_noise(field: pd.DataFrame, draws: pd.DataFrame, *, score: str = "tko",
                 reference: int = 0) -> pd.DataFrame:
    """Per image: the reference draw's winner, its margin, and what the other draws make of it.

    Parameters
    ----------
    field : DataFrame
        One (seed, split) with every method: columns image_id, method, ``score``; the
        stochastic methods' scores there are replaced by the draws', so any draw may be
        missing from it.
    draws : DataFrame
        The stochastic methods' scores: image_id, method, draw, ``score``; every method under
        every draw, the ``reference`` draw among them.

    Returns
    -------
    DataFrame, one row per image:
        ``winner`` (keys joined by ``+`` when tied), ``runner_up`` and ``margin`` (the
        winner's score minus the best other method's; 0 when tied), ``noise_band`` (the
        larger spread of the winner(s) and the runner-up; 0 for deterministic methods),
        ``tie_within_noise`` (margin <= noise band > 0), ``winners`` (each draw's winner, in
        draw order, joined by ``|``), ``winner_changes`` (draws whose winner differs from the
        reference's) and ``robust`` (no such draw).
    """
    matrices = _draw_matrices(field, draws, score)
    if reference not in matrices:
        raise ValueError(f"no draw {reference} among the draws {sorted(matrices)}")
    spreads = draw_spread(draws, score=score).pivot(index="image_id", columns="method", values="spread")
    order = sorted(matrices)
    rows: list[dict[str, Any]] = []
    for image_id, scores in matrices[reference].iterrows():
        lead = noise_margin(scores.to_dict(), spreads.loc[image_id].to_dict())
        winner = TIE_JOIN.join(lead.winners)
        per_draw = [_winners(matrices[d].loc[image_id]) for d in order]
        changes = sum(w != winner for w in per_draw)
        rows.append({"image_id": image_id, "winner": winner, "runner_up": TIE_JOIN.join(lead.runners_up),
                     "margin": lead.margin, "noise_band": lead.band, "tie_within_noise": lead.tie_within_noise,
                     "winners": "|".join(per_draw), "winner_changes": changes, "robust": changes == 0})
    return pd.DataFrame(rows)


def neighbour_gaps(field: pd.DataFrame, draws: pd.DataFrame, *, score: str = "tko",
                   reference: int = 0) -> pd.DataFrame:
    """Per image and stochastic method: its spread against the gap to its nearest neighbour.

    The gap is the smallest |difference| between the method's reference-draw score and any
    other method's score on that image (0 when another method ties it). Returns image_id,
    method, ``score`` (the reference draw's), ``gap``, ``spread`` and ``exceeds`` (spread > gap).
    """
    base = _draw_matrices(field, draws, score)[reference]
    spreads = draw_spread(draws, score=score).set_index(["image_id", "method"])["spread"]
    rows = []
    for method in sorted(draws["method"].unique()):
        own = base[method]
        others = base.drop(columns=[method])
        gaps = others.sub(own, axis=0).abs().min(axis=1)
        for image_id in base.index:
            spread = float(spreads.loc[(image_id, method)])
            rows.append({"image_id": image_id, "method": method, score: float(own[image_id]),
                         "gap": float(gaps[image_id]), "spread": spread, "exceeds": spread > gaps[image_id]})
    return pd.DataFrame(rows)


def noise_summary(field: pd.DataFrame, draws: pd.DataFrame, *, score: str = "tko",
                  reference: int = 0) -> dict[str, Any]:
    """The headline figures of :func:`draw_spread`, :func:`neighbour_gaps` and :func:`winner_noise`.

    Returns a JSON-ready dict: ``n_images``, ``n_draws``, per stochastic method its median,
    p90 and largest spread and the images where the spread exceeds the neighbour gap; the
    images whose winner changes under some draw, the ties within noise, and per winning
    method its reference-draw wins (shared ties count as shares) and its robust ones.
    """
    wins = winner_noise(field, draws, score=score, reference=reference)
    gaps = neighbour_gaps(field, draws, score=score, reference=reference)
    ranked = set(wins["image_id"])
    spread = draw_spread(draws, score=score)
    spread = spread[spread["image_id"].isin(ranked)]
    methods = {}
    for method, rows in spread.groupby("method", sort=True):
        exceeded = gaps[gaps["method"] == method]
        methods[method] = {"median_spread": float(rows["spread"].median()),
                           "p90_spread": float(rows["spread"].quantile(0.9)),
                           "max_spread": float(rows["spread"].max()),
                           "spread_exceeds_gap": int(exceeded["exceeds"].sum())}
    shares: dict[str, float] = {}
    robust: dict[str, float] = {}
    for _, row in wins.iterrows():
        leaders = row["winner"].split(TIE_JOIN)
        for m in leaders:
            shares[m] = shares.get(m, 0.0) + 1 / len(leaders)
            if row["robust"]:
                robust[m] = robust.get(m, 0.0) + 1 / len(leaders)
    return {"score": score, "n_images": int(len(wins)), "n_draws": int(draws["draw"].nunique()),
            "reference_draw": reference, "methods": methods,
            "winner_changes": int((wins["winner_changes"] > 0).sum()),
            "robust_images": int(wins["robust"].sum()),
            "ties_within_noise": int(wins["tie_within_noise"].sum()),
            "wins": {m: _round_share(v) for m, v in sorted(shares.items(), key=lambda kv: -kv[1])},
            "robust_wins": {m: _round_share(robust.get(m, 0.0)) for m in sorted(shares, key=lambda m: -shares[m])}}


def _round_share(value: float) -> float:
    """Win counts are sums of 1/m shares: round off the float sum's last bits."""
    return math.floor(value * 1e9 + 0.5) / 1e9


def map_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (float64); nan when either is constant."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else float("nan")


def count_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, count): median Pearson and median |TKO change| over the images, and ``stable``."""
    curve = rows.groupby(["method", "count"], sort=True).agg(
        images=("image_id", "count"), median_pearson=("pearson", "median"),
        median_tko_change=("tko_change", "median"), max_tko_change=("tko_change", "max"),
        seconds_per_map=("seconds_per_map", "first")).reset_index()
    curve["stable"] = (curve["median_pearson"] >= STABLE_PEARSON) & (curve["median_tko_change"] <= STABLE_TKO_CHANGE)
    return curve


def stable_count(curve: pd.DataFrame, method_key: str) -> int | None:
    """The smallest count of ``method_key`` from which every larger count tried is stable too; None if none is."""
    own = curve[curve["method"] == method_key].sort_values("count")
    stable = own["stable"].tolist()
    for i, count in enumerate(own["count"]):
        if all(stable[i:]):
            return int(count)
    return None
