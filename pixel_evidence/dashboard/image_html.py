"""The words and tables of the per-image view, as HTML strings and data frames.

Pure functions of an ``Explanation`` (and the catalogue): the view puts them on screen, the
tests read them, the exports reuse the ranking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pixel_evidence.dashboard.catalogue import Catalogue
from pixel_evidence.dashboard.colours import BAD_COLOUR, GOOD_COLOUR, PIXEL_LEGEND, WIN_COLOUR, line_styles
from pixel_evidence.dashboard.formatting import fmt, fmt_lift, ig_convergence, rank_label, result_label
from pixel_evidence.dashboard.glossary import term
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.pictures import MethodPicture
from pixel_evidence.dashboard.state import TARGET_LABELS
from pixel_evidence.engine.explanation import Explanation
from pixel_evidence.metrics.draw_noise import noise_margin


def ranking_frame(ex: Explanation) -> pd.DataFrame:
    """One row per method of an explanation, best first: the numbers of the ranking table."""
    ranks = [r.rank for r in ex.methods.values()]
    rows = []
    for key, r in ex.methods.items():
        rows.append({"Method": r.label, "method": key, "TKO": r.tko, "Lift": r.lift, "IoU": r.iou,
                     "Chance": r.chance, "Rank": r.rank, "Rank shown": rank_label(r.rank, ranks),
                     "Win share": r.win_share})
    df = pd.DataFrame(rows, columns=["Method", "method", "TKO", "Lift", "IoU", "Chance", "Rank", "Rank shown",
                                     "Win share"])
    if ex.rankable:
        df = df.sort_values(["Rank", "Method"], kind="stable")
    return df.reset_index(drop=True)


def table_frame(ex: Explanation) -> pd.DataFrame:
    """The ranking table as shown: numbers written out, best first."""
    df = ranking_frame(ex)
    return pd.DataFrame({
        "Method": df["Method"],
        "TKO": [fmt(x) for x in df["TKO"]],
        "Lift": [fmt_lift(x) for x in df["Lift"]],
        "IoU": [fmt(x) for x in df["IoU"]],
        "Chance": [fmt(x, 4) for x in df["Chance"]],
        "Rank": df["Rank shown"],
        "Result": [result_label(x) for x in df["Win share"]],
    })


def title_html(ex: Explanation, catalogue: Catalogue) -> str:
    """The line above the panes: which image, where it sits in its class, which model."""
    ids = catalogue.image_ids(ex.split, ex.true_class)
    i, n = (ids.index(ex.image_id) + 1 if ex.image_id in ids else 0), len(ids)
    return (f'<div class="pe-title-text" style="font-size:22px;font-weight:700">{plain(ex.image_id)}'
            f'<span style="font-weight:400;color:#555;font-size:17px"> · class {plain(ex.true_class)} '
            f'· image {i} / {n} · {ex.split} split · seed {ex.seed} · '
            f'{ex.image.shape[1]}×{ex.image.shape[0]} px as the model saw it</span></div>')


def highlight_winner(row: pd.Series) -> list[str]:
    """Tabulator row style: the winning rows in the winner's colour."""
    win = str(row.get("Result", "")).startswith(("winner", "shared win"))
    style = f"background-color: {WIN_COLOUR}; color: white; font-weight: bold" if win else ""
    return [style] * len(row)


def _badge(text: str, colour: str, fg: str = "white") -> str:
    return (f'<span style="background:{colour};color:{fg};border-radius:6px;padding:2px 10px;'
            f'font-weight:700;font-size:15px;white-space:nowrap">{plain(text)}</span>')


def verdict_html(ex: Explanation, spreads: Mapping[str, float] | None = None, draws: int = 0) -> str:
    """The big line above the ranking table: who wins, a shared win, or no ranking at all.

    ``spreads``: the stochastic methods' TKO spread over ``draws`` draws of their own seed
    on this image (the noise study); a lead no larger than it is called a tie within noise."""
    if ex.empty_mask:  # a defect image whose mask is empty: bad data, said as such
        return ('<div class="pe-verdict pe-nowin pe-empty-mask" style="font-size:22px;font-weight:700;'
                f'color:{BAD_COLOUR}">This {plain(ex.true_class)} image has an empty mask (K = 0): '
                'nothing to rank, no winner.</div>'
                '<div class="pe-empty-mask-file" style="font-size:14px;color:#333">A defect image should mark its '
                f'defect; this one is bad data and is left out of the win rates. {plain(ex.empty_mask)}</div>')
    if not ex.rankable:
        return ('<div class="pe-verdict pe-nowin" style="font-size:22px;font-weight:700;color:#444">'
                'No defect pixels on this image (K = 0): nothing to rank, no winner.</div>'
                '<div style="font-size:14px;color:#555">A good (defect-free) image has an empty mask, so '
                'TKO, lift and IoU are undefined. Pick a defect class to compare the methods.</div>')
    winners = [ex.methods[k] for k in ex.winners]
    names = " & ".join(w.label for w in winners)
    best = winners[0].tko if winners else math.nan
    if len(winners) == 1:
        head = f'★ {plain(names)} wins'
        sub = f"highest Top-K overlap: {fmt(best)} ({term('chance')} {fmt(winners[0].chance)})"
    else:
        head = f'★ Tie for first: {plain(names)}'
        sub = f"each gets 1/{len(winners)} of the win; Top-K overlap {fmt(best)}"
    if best == 0:
        sub += " · every method missed the defect entirely"
    if not ex.correct:
        sub += " · the image is misclassified, so it does not count towards the win rates"
    sub += _noise_note(ex, spreads or {}, draws)
    return (f'<div class="pe-verdict" style="font-size:26px;font-weight:800;color:{WIN_COLOUR};line-height:1.2">'
            f'{head}</div><div class="pe-verdict-sub" style="font-size:15px;color:#333">{sub}</div>')


def _noise_note(ex: Explanation, spreads: Mapping[str, float], draws: int) -> str:
    """" · tie within noise: ..." when the lead is within a stochastic method's own noise, else ""."""
    scores = {k: r.tko for k, r in ex.methods.items() if math.isfinite(r.tko)}
    lead = noise_margin(scores, {k: v for k, v in spreads.items() if k in scores}) if scores else None
    if lead is None or not lead.tie_within_noise:
        return ""
    involved = lead.winners if len(lead.winners) > 1 else (*lead.winners, *lead.runners_up)
    names = " and ".join(ex.methods[k].label for k in involved if spreads.get(k, 0) > 0)
    return (f' · <span class="pe-tie-noise" style="font-weight:700;color:{BAD_COLOUR}">tie within noise</span>: '
            f"the TKO of {plain(names)} spreads by up to {fmt(lead.band)} over {draws} draws of its own random "
            f"seed, which covers the lead of {fmt(lead.margin)}")


def prediction_html(ex: Explanation, has_masks: bool = True) -> str:
    """The prediction beside the image; the defect size and chance level only for data with masks."""
    p = ex.probabilities
    pred = ex.predicted_class
    prob = float(p[int(np.argmax(p))])
    true_prob = float(p[list(ex.classes).index(ex.true_class)]) if ex.true_class in ex.classes else math.nan
    if ex.correct:
        flag = (f'<div style="color:{GOOD_COLOUR};font-size:18px;font-weight:800">✔ correct</div>')
    else:
        flag = (f'<div style="background:{BAD_COLOUR};color:white;font-size:18px;font-weight:800;'
                'padding:2px 8px;border-radius:6px;display:inline-block">✘ MISCLASSIFIED</div>')
    k_line = (f"Defect: K = {ex.k:,} of N = {ex.n:,} px ({100 * ex.k / ex.n:.2f}%)" if ex.k
              else "Defect: mask empty (K = 0), bad data" if ex.empty_mask else "Defect: none (K = 0)")
    chance = (f"{term('chance', 'chance')} TKO = K/N = {ex.k / ex.n:.4f}" if ex.k
              else "no chance level: nothing to find")
    target = (f"Maps explain the {TARGET_LABELS[ex.target_mode]}: <b>{plain(ex.target_class)}</b>")
    facts = f"{k_line}<br>{chance}<br>{target}" if has_masks else target
    return f"""
<div class="pe-prediction" style="font-size:14px;line-height:1.35">
  <div><span style="color:#555">Predicted</span>
    <span style="font-size:24px;font-weight:800" class="pe-pred-class">{plain(pred)}</span>
    <span style="font-size:17px;font-weight:600">{100 * prob:.0f}%</span></div>
  <div><span style="color:#555">True class</span>
    <span style="font-size:19px;font-weight:700" class="pe-true-class">{plain(ex.true_class)}</span>
    <span style="color:#555">(p = {100 * true_prob:.0f}%)</span></div>
  {flag}
  <div style="margin-top:4px">{facts}</div>
</div>"""


def method_card_html(ex: Explanation, key: str, catalogue: Catalogue, pic: MethodPicture) -> str:
    r = ex.methods[key]
    ranks = [m.rank for m in ex.methods.values()]
    if not catalogue.has_masks:  # the view says once why there is no rank and no TKO
        badge = ""
    elif not ex.rankable:
        badge = _badge("not ranked (K = 0)", "#777")
    elif r.win_share == 1:
        badge = _badge("★ WINNER", WIN_COLOUR)
    elif r.win_share > 0:
        badge = _badge(f"★ shared win (1/{round(1 / r.win_share)})", WIN_COLOUR)
    else:
        badge = _badge(f"rank {rank_label(r.rank, ranks)}", "#e6e6e6", "#222")
    cost = catalogue.cost_notes.get(key, "")
    params = catalogue.method_params.get(key, {})
    extra = ""
    if "relative_delta" in r.extras:
        words, flagged = ig_convergence(r.extras, params.get("tolerance"))
        # the words say it too ("NOT CONVERGED"), so the colour is not the only sign
        style = "margin-top:6px" + (f";color:{BAD_COLOUR};font-weight:600;border-left:4px solid {BAD_COLOUR};"
                                    "padding-left:6px" if flagged else "")
        extra = f'<div class="pe-ig-delta{" pe-ig-unconverged" if flagged else ""}" style="{style}">{words}</div>'
    if not catalogue.has_masks:
        numbers = ""
    elif ex.rankable:
        p = pic.pixels
        tie = ""
        if p.n_tied:
            tie = (f'<div style="color:#555">{p.n_tied:,} pixels tie at the cut-off and share '
                   f'{p.k - p.n_above:,} slots (each counts {p.tie_share:.3f})</div>')
        numbers = f"""
  <div style="display:flex;align-items:baseline;gap:10px">
    <span style="font-size:15px;color:#555">{term("tko")}</span>
    <span class="pe-tko" data-method="{key}" style="font-size:46px;font-weight:800;line-height:1">{fmt(r.tko)}</span>
  </div>
  <div style="font-size:17px"><b class="pe-lift">{fmt_lift(r.lift)}</b> {term("lift", "over chance")}
      (<span class="pe-chance">{fmt(r.chance, 4)}</span>) · IoU <b class="pe-iou">{fmt(r.iou)}</b></div>
  <div style="font-size:14px;color:#333">{p.hits:,} hits · {p.misses:,} misses · {p.false_alarms:,} false alarms</div>
  {tie}"""
    else:
        numbers = (f'<div style="font-size:15px;color:#555">{term("tko")} <span class="pe-tko" data-method="'
                   f'{key}" style="font-size:30px;font-weight:700">—</span><br>no defect pixels to find</div>')
    colour, dash = line_styles(dict(catalogue.method_labels)).get(r.label, ("#333333", "solid"))
    return f"""
<div class="pe-method-card" data-method="{key}" style="font-size:14px;line-height:1.35">
  <div style="display:flex;align-items:center;gap:10px;margin-bottom:4px">
    <span class="pe-method-key" data-colour="{colour}" data-dash="{dash}" title="this method's line in the charts"
      style="display:inline-block;width:34px;border-top:4px {CSS_DASH[dash]} {colour}"></span>
    <span style="font-size:22px;font-weight:800">{plain(r.label)}</span></div>
  <div style="margin-bottom:4px">{badge}</div>
  {numbers}
  <div style="color:#555;margin-top:6px">Cost: {plain(cost)}</div>
  {extra}
</div>"""


CSS_DASH = {"solid": "solid", "dashed": "dashed", "dotted": "dotted", "dotdash": "dashed"}

NEEDS_MASKS_NOTICE = ("No defect masks in this data: TKO, lift, IoU, the ranking and the top-K pictures need masks "
                      "and are hidden; the heatmaps, agreement, deletion/insertion and the randomization check work "
                      "without them.")


def slow_warning_html(catalogue: Catalogue, methods: list[str] | tuple[str, ...]) -> str:
    """The note above the maps when slow methods are chosen ("" when none is): why the wait."""
    slow = [m for m in methods if m in catalogue.slow_methods]
    if not slow:
        return ""
    names = ", ".join(plain(catalogue.method_labels[m]) for m in slow)
    costs = "".join(f"<li><b>{plain(catalogue.method_labels[m])}</b>: {plain(catalogue.cost_notes[m])}</li>"
                    for m in slow)
    what = ("These are perturbation methods that need" if len(slow) > 1
            else "This is a perturbation method that needs")
    return (f'<div class="pe-slow-text" style="font-size:15px"><b>Slow method{"s" if len(slow) > 1 else ""}: '
            f"{names}.</b> {what} hundreds of forward passes, so a new image takes seconds on a CPU (once "
            f'computed, an image is cached).<ul style="margin:4px 0 0 0">{costs}</ul></div>')


def legend_html() -> str:
    """The pixel colours as a column beside the ranking; how to read the heatmaps below them
    (folded away in presentation mode, where the colour keys stay)."""
    items = "".join(
        f'<div style="display:flex;align-items:center;gap:6px">'
        f'<span style="width:15px;height:15px;background:{c};border:1px solid #333;display:inline-block"></span>'
        f'<b>{plain(name)}</b></div>' for name, c, _ in PIXEL_LEGEND)
    return f"""
<div class="pe-legend" style="font-size:14px;line-height:1.4">
  <div>Top-K pixels (K = defect pixels):</div>{items}
  <div class="pe-scaling" style="margin-top:4px">Heatmaps: each stretched from its 1st percentile (dark) to its
  99.5th (bright).</div>
  <details class="pe-explain" style="color:#444"><summary style="cursor:pointer">How to read the pictures</summary>
  Display only: a map's baseline, however high, stays dark, so the bright pixels are those its top K takes;
  TKO, lift and IoU use the raw maps. Ties at the cut-off are never broken by pixel order: tied pixels share
  the last top-K slots and count fractionally. White outline = ground-truth defect. Drag to pan, scroll to
  zoom: all images follow.</details>
</div>"""
