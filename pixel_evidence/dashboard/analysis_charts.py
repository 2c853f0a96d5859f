"""The analysis sections' pictures: the agreement matrix, the faithfulness and sanity tables
(HTML) and their charts (HoloViews), each a pure function of an explanation and its answers."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pixel_evidence.checks.results import Curve, SanityResult
from pixel_evidence.dashboard import charts
from pixel_evidence.dashboard.colours import agreement_colour, agreement_scale
from pixel_evidence.dashboard.formatting import fmt
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.engine.explanation import Explanation

PASS_TEXT = "PASS: the map changes when the weights are random"
FAIL_TEXT = "FAIL: the map barely changes: it shows the image, not what the model learned"


def agreement_frame(ex: Explanation, pairs: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    """The full methods × methods matrix in long form (a, b, value): both triangles, diagonal 1."""
    labels = {k: r.label for k, r in ex.methods.items()}
    rows = [(labels[k], labels[k], 1.0) for k in labels]
    for p in pairs:
        v = float(p[metric])
        rows += [(labels[p["a"]], labels[p["b"]], v), (labels[p["b"]], labels[p["a"]], v)]
    return pd.DataFrame(rows, columns=["a", "b", "value"])


def agreement_html(frame: pd.DataFrame, order: list[str], metric: str, metric_label: str) -> str:
    """The methods × methods matrix of ``frame`` (from :func:`agreement_frame`) as an HTML table:
    each cell coloured on the scale the summary's heatmap uses (``agreement_scale``) with its
    value written in it, grey where there is no value (a constant map), and the scale below.

    HTML rather than a HoloViews heatmap: it follows every image, and a table is drawn in
    about a millisecond where a new Bokeh figure takes a tenth of a second."""
    _cmap, (lo, hi) = agreement_scale(metric)
    values = {(a, b): v for a, b, v in frame[["a", "b", "value"]].itertuples(index=False)}

    def cell(a: str, b: str) -> str:
        v = values.get((a, b), math.nan)
        style = ("background:#dddddd;color:#555" if math.isnan(v) else
                 f"background:{agreement_colour(metric, v)};color:{'white' if abs(v) > 0.6 else '#111'}")
        return (f'<td class="pe-agree-cell" data-a="{plain(a)}" data-b="{plain(b)}" '
                f'style="{style};width:88px;height:46px;text-align:center;border:2px solid white">'
                f"{fmt(v, 2)}</td>")

    head = "".join(f'<th style="padding:4px;font-weight:600;max-width:88px">{plain(b)}</th>' for b in order)
    body = "".join(f'<tr><th style="text-align:right;padding-right:10px;font-weight:600">{plain(a)}</th>'
                   + "".join(cell(a, b) for b in order) + "</tr>" for a in order)
    stops = ", ".join(agreement_colour(metric, lo + (hi - lo) * i / 10) for i in range(11))
    scale = (f'<div style="display:flex;align-items:center;gap:8px;margin-top:8px;font-size:14px;color:#333">'
             f"{lo:g}<span style=\"display:inline-block;width:220px;height:12px;background:linear-gradient("
             f'to right, {stops})"></span>{hi:g}<span style="color:#555">({plain(metric_label)}; '
             "grey: a constant map, no value)</span></div>")
    return (f'<div class="pe-agree-matrix" style="font-size:15px"><div style="font-weight:600;margin:4px 0">'
            f"{plain(metric_label)}, this image</div><table style=\"border-collapse:collapse\">"
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>{scale}</div>")


def faithfulness_charts(ex: Explanation, curves: dict[str, dict[str, Curve]],
                        styles: dict[str, tuple[str, str]]) -> list:
    """One chart per mode, a curve per method, its AUC in the legend."""
    hv = charts.hv()
    p = hv.Dimension("p", label=f"P({ex.target_class})", range=(0, 1.02))
    out = []
    for mode, verb in (("deletion", "removed"), ("insertion", "added")):
        x = hv.Dimension("fraction", label=f"fraction of pixels {verb}, most important first", range=(0, 1))
        lines = []
        for key, by_mode in curves.items():
            label = ex.methods[key].label
            c = by_mode[mode]
            colour, dash = styles[label]
            lines.append(hv.Curve((c.fractions, c.probabilities), x, p, label=f"{label} (AUC {c.auc:.3f})").opts(
                color=colour, line_dash=dash, line_width=3, tools=["hover"]))
        better = "lower" if mode == "deletion" else "higher"
        out.append(hv.Overlay(lines).opts(
            # the legend beside the frame: inside, some curve always runs under it
            title=f"{mode.capitalize()} ({better} AUC = more faithful)", frame_width=380, frame_height=280,
            legend_position="right", fontscale=1.1, toolbar=None, show_grid=True))
    return out


def sanity_chart(ex: Explanation, results: dict[str, SanityResult], styles: dict[str, tuple[str, str]],
                 threshold: float):
    hv = charts.hv()
    depth = hv.Dimension("layer", label="randomized from the top down to")
    rho = hv.Dimension("spearman", label="Spearman with the original map", range=(-1.05, 1.05))
    lines = []
    for key, res in results.items():
        label = ex.methods[key].label
        colour, dash = styles[label]
        lines.append(hv.Curve([(s.layer, s.spearman) for s in res.steps], depth, rho, label=label).opts(
            color=colour, line_dash=dash, line_width=3, tools=["hover"]))
    limits = [hv.HLine(y).opts(color="#777777", line_dash="dashed", line_width=2) for y in (threshold, -threshold)]
    return hv.Overlay(lines + limits).opts(
        title=f"Map similarity as more layers are randomized (pass: |Spearman| < {threshold:g} at the end)",
        frame_width=620, frame_height=260, legend_position="right", xrotation=30, fontscale=1.1, toolbar=None,
        show_grid=True)


def table_html(css: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain, readable table; cells are HTML (callers escape their text)."""
    head = "".join(f'<th style="text-align:left;padding:4px 14px 4px 0">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="padding:4px 14px 4px 0">{c}</td>' for c in row) + "</tr>"
                   for row in rows)
    return (f'<table class="{css}" style="font-size:15px;border-collapse:collapse">'
            f'<thead style="border-bottom:2px solid #333">{head}</thead><tbody>{body}</tbody></table>')


def faithfulness_table(ex: Explanation, curves: dict[str, dict[str, Curve]]) -> str:
    best = {mode: pick([c[mode].auc for c in curves.values()]) for mode, pick in
            (("deletion", min), ("insertion", max))}

    def cell(key: str, mode: str) -> str:
        auc = curves[key][mode].auc
        star = " ★" if len(curves) > 1 and auc == best[mode] else ""
        return f'<span class="pe-auc" data-method="{key}" data-mode="{mode}">{auc:.3f}</span>{star}'

    rows = [[plain(ex.methods[k].label), cell(k, "deletion"), cell(k, "insertion")] for k in curves]
    return table_html("pe-faith-table", ["Method", "Deletion AUC (lower = better)",
                                         "Insertion AUC (higher = better)"], rows)


def sanity_table(ex: Explanation, results: dict[str, SanityResult]) -> str:
    rows = []
    for key, res in results.items():
        colour = "#009E73" if res.passed else "#D55E00"
        verdict = (f'<span class="pe-sanity-verdict" data-method="{key}" data-passed="{str(res.passed).lower()}" '
                   f'style="color:{colour};font-weight:700">{PASS_TEXT if res.passed else FAIL_TEXT}</span>')
        last = res.steps[-1] if res.steps else None
        rows.append([plain(ex.methods[key].label),
                     f'<span class="pe-sanity-rho" data-method="{key}">{fmt(res.final_spearman)}</span>',
                     fmt(last.top_iou) if last else "—", verdict])
    return table_html("pe-sanity-table", ["Method", "Spearman after all layers are random", "Top-20% IoU",
                                          "Verdict"], rows)
