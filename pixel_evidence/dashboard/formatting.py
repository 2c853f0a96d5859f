"""How numbers and names are written on the page, in the tables and in the exports."""

from __future__ import annotations

import math

import pandas as pd

from pixel_evidence.metrics.scores import LOCALISATION_SCORES


def fmt(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_lift(x: float) -> str:
    if x is None or math.isnan(x):
        return "—"
    return f"×{x:.1f}" if x < 100 else f"×{x:.0f}"


def ig_gap(relative_delta: float) -> str:
    """IG's convergence gap, "3.2% of the score change"; "undefined: ..." when the image and
    the baseline score the same (the engine's NaN: no change to take a share of)."""
    if relative_delta is None or math.isnan(relative_delta):
        return "undefined: the image and the black baseline score the same"
    return f"{100 * relative_delta:.1f}% of the score change"


def ig_convergence(extras: dict[str, float], tolerance: float | None = None) -> tuple[str, bool]:
    """(words, flagged): IG's gap, the steps it took and how stable the map was, e.g.
    "IG convergence gap: 3.2% of the score change after 512 steps; map stable to ρ = 0.99";
    flagged when a tolerance was asked for and not reached. A fixed rule (no tolerance) says
    that its stability was not measured rather than leave it out."""
    rd = extras.get("relative_delta", math.nan)
    steps = extras.get("steps", math.nan)
    words = f"IG convergence gap: {ig_gap(rd)}" + ("" if math.isnan(steps) else f" after {steps:.0f} steps")
    converged = extras.get("converged", math.nan)
    rho = extras.get("stability_spearman", math.nan)
    if math.isnan(converged):
        return words + " (fixed rule: no tolerance asked, map stability not measured)", False
    words += "; map stable to ρ = " + ("—" if math.isnan(rho) else f"{rho:.2f}")
    if "tko_change" in extras and not math.isnan(extras["tko_change"]):
        words += f", TKO {extras['tko_change']:+.3f} in the last refinement"
    asked = "" if tolerance is None else f" {100 * tolerance:g}%"
    if converged:
        return words + f" (within the{asked} tolerance)", False
    return words + f" — NOT CONVERGED: not within the{asked} tolerance twice in a row by the step cap", True


def mean_std(mean: float, std: float) -> str:
    """'0.62 ± 0.11'; just the mean when the spread is undefined (a single image)."""
    return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def rank_label(rank: float, all_ranks: list[float]) -> str:
    """``"1"``, ``"1.5 (tie)"``, ``"2 (3-way tie)"``; ``"—"`` for an unrankable image."""
    if rank is None or math.isnan(rank):
        return "—"
    shared = sum(1 for r in all_ranks if r == rank)
    text = f"{rank:g}"
    if shared == 2:
        return f"{text} (tie)"
    if shared > 2:
        return f"{text} ({shared}-way tie)"
    return text


def result_label(win_share: float) -> str:
    if win_share is None or math.isnan(win_share):
        return "not ranked"
    if win_share == 1:
        return "winner"
    if win_share > 0:
        return f"shared win (1/{round(1 / win_share)})"
    return ""


def score_name(score: str) -> str:
    """A localisation score's name as a sentence starts it ("Top-K overlap", "Pointing game")."""
    name = LOCALISATION_SCORES[score].label
    return name[:1].upper() + name[1:]


def agreement_names(share: float | None) -> dict[str, str]:
    """Display name of each agreement statistic, the same in every view; ``share``: the top
    share of pixels the IoU compares, if known."""
    iou = f"top-{share:.0%} IoU" if share is not None else "top-share IoU"
    return {"pearson": "Pearson r", "spearman": "Spearman ρ", "top_iou": iou}


def based_on(df: pd.DataFrame) -> str:
    """'64 images of seed 42' / '128 images from seeds 42, 43' / '640 images from 10 seeds (42-51)'.

    An image counts once per seed: each seed's model gives it its own maps."""
    n_images = len(df[["seed", "image_id"]].drop_duplicates())
    seeds = sorted(int(s) for s in df["seed"].unique())
    noun = "image" if n_images == 1 else "images"
    if len(seeds) == 1:
        return f"{n_images} {noun} of seed {seeds[0]}"
    if len(seeds) <= 4:
        return f"{n_images} {noun} from seeds {', '.join(map(str, seeds))}"
    return f"{n_images} {noun} from {len(seeds)} seeds ({seeds[0]}–{seeds[-1]})"
