"""Downloads, built in memory (nothing is written to disk): PNG and HTML figures, CSV tables."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pandas as pd

from pixel_evidence.dashboard.colours import HEAT_CMAP, PIXEL_LEGEND, RECON_CMAP, palette
from pixel_evidence.dashboard.formatting import fmt, fmt_lift, ig_convergence, rank_label, result_label
from pixel_evidence.dashboard.image_html import ranking_frame
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.pictures import Pictures
from pixel_evidence.engine.explanation import Explanation
from pixel_evidence.results import TABLE_COLUMNS, ig_columns

# tko_table.csv's columns, with the method's label after its key
RANKING_COLUMNS = [c for col in TABLE_COLUMNS for c in ((col, "label") if col == "method" else (col,))]


# A spreadsheet reads a cell that starts with one of these as a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, with a quote in front so that it
    is shown as text; numbers (a negative one too) and all other values unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _csv_bytes(df: pd.DataFrame) -> io.BytesIO:
    """Every CSV download: text cells (and column names) that would be formulas made inert."""
    safe = df.rename(columns=inert).map(inert)
    # CRLF, as RFC 4180 has it: the writer then quotes a cell holding a carriage return too
    buf = io.BytesIO(safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))
    buf.seek(0)
    return buf


def ranking_table(ex: Explanation) -> pd.DataFrame:
    """The per-image ranking as tidy rows, same columns as ``tko_table.csv`` plus the label."""
    df = ranking_frame(ex)
    rows = []
    for _, row in df.iterrows():
        r = ex.methods[row["method"]]
        rows.append({"seed": ex.seed, "split": ex.split, "image_id": ex.image_id, "class": ex.true_class,
                     "predicted": ex.predicted_class, "correct": ex.correct, "target": ex.target_class,
                     "method": r.key, "label": r.label, "k": ex.k, "n": ex.n, "tko": r.tko, "chance": r.chance,
                     "lift": r.lift, "iou": r.iou, "rank": r.rank, "win_share": r.win_share,
                     **ig_columns(r.extras)})
    return pd.DataFrame(rows, columns=RANKING_COLUMNS)


def ranking_csv(ex: Explanation) -> io.BytesIO:
    return _csv_bytes(ranking_table(ex))


def table_csv(df: pd.DataFrame) -> io.BytesIO:
    return _csv_bytes(df)


def file_stem(ex: Explanation) -> str:
    return f"pixel-evidence_seed{ex.seed}_{ex.split}_{ex.image_id}"


# ----------------------------------------------------------------------------- PNG


def _text_lines(ax: Any, lines: list[tuple[str, float, str]]) -> None:
    """Lines from the top of ``ax`` down, spaced by their font size (points), so they sit
    under one another whatever the height of the axes."""
    ax.axis("off")
    y = 0.0
    for text, size, weight in lines:
        ax.annotate(text, (0, 1), xycoords="axes fraction", xytext=(0, -y), textcoords="offset points", va="top",
                    ha="left", fontsize=size, fontweight=weight, parse_math=False)  # class names may hold "$"
        y += size * 1.4


def _verdict_text(ex: Explanation) -> str:
    if not ex.rankable:
        return "No defect pixels on this image (K = 0): nothing to rank, no winner."
    winners = [ex.methods[k] for k in ex.winners]
    names = " & ".join(w.label for w in winners)
    head = f"★ {names} wins" if len(winners) == 1 else f"★ Tie for first: {names}"
    return f"{head}: highest Top-K overlap {fmt(winners[0].tko)} (chance {fmt(winners[0].chance, 4)})"


def figure_png(ex: Explanation, pics: Pictures, dpi: int = 110) -> io.BytesIO:
    """The per-image figure, laid out like the page: the image row with the prediction beside
    it, the winner and ranking table with the pixel legend, then a row per method (heatmap,
    top-K picture, its numbers). Drawn with matplotlib's object API (no pyplot: thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    keys = list(ex.methods)
    table = ranking_frame(ex)
    heights = [3.0, 0.45 + 0.22 * (len(table) + 1)] + [3.0] * len(keys)
    fig = Figure(figsize=(13, sum(heights) + 0.5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(h_pad=0.06, hspace=0.04)
    grid = fig.add_gridspec(len(heights), 4, height_ratios=heights, width_ratios=[1, 1, 1.1, 1.1])
    fig.suptitle(f"{ex.image_id} · class {ex.true_class} · {ex.split} split · seed {ex.seed} · "
                 f"{ex.image.shape[1]}×{ex.image.shape[0]} px as the model saw it", fontsize=13, fontweight="bold",
                 x=0.01, ha="left", parse_math=False)  # an id with "$" is a name, not mathematics

    def outline(ax):
        if ex.k:
            ax.contour(np.asarray(ex.mask, dtype=float), levels=[0.5], colors="white", linewidths=0.9)

    def show(ax, arr, title, **kw):
        im = ax.imshow(arr, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=11, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
        return im

    # row 0: image, ground truth, reconstruction, prediction
    show(fig.add_subplot(grid[0, 0]), pics.image, "Image")
    show(fig.add_subplot(grid[0, 1]), pics.mask_overlay, "Ground truth" if ex.k else "No defect (K = 0)")
    ax = fig.add_subplot(grid[0, 2])
    im = show(ax, pics.reconstruction, pics.reconstruction_title, cmap=ListedColormap(palette(RECON_CMAP)),
              vmin=0, vmax=1)
    outline(ax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="P(defect)")
    status = "✔ correct" if ex.correct else "✘ MISCLASSIFIED"
    facts = [(f"Predicted {ex.predicted_class} {100 * float(np.max(ex.probabilities)):.0f}%", 15, "bold"),
             (f"True class {ex.true_class}", 12, "normal"), (status, 13, "bold")]
    if ex.k:
        facts += [(f"Defect: K = {ex.k:,} of N = {ex.n:,} px", 10, "normal"),
                  (f"chance TKO = K/N = {ex.k / ex.n:.4f}", 10, "normal")]
    facts.append((f"Maps explain the {ex.target_mode} class: {ex.target_class}", 10, "normal"))
    _text_lines(fig.add_subplot(grid[0, 3]), facts)

    # row 1: the verdict and the ranking table, the pixel legend beside them
    ax = fig.add_subplot(grid[1, :3])
    ax.axis("off")
    ax.set_title(_verdict_text(ex), fontsize=14, fontweight="bold", loc="left", color="#0072B2")
    ranks = [r.rank for r in ex.methods.values()]
    cells = [[r["Method"], fmt(r["TKO"]), fmt_lift(r["Lift"]), fmt(r["IoU"]), fmt(r["Chance"], 4),
              rank_label(r["Rank"], ranks), result_label(r["Win share"])] for _, r in table.iterrows()]
    drawn = ax.table(cellText=cells, colLabels=["Method", "TKO", "Lift", "IoU", "Chance", "Rank", "Result"],
                     loc="upper left", cellLoc="left", colLoc="left", edges="horizontal")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(11)
    drawn.auto_set_column_width(list(range(7)))
    handles = [Patch(facecolor=c, edgecolor="#333", label=name) for name, c, _ in PIXEL_LEGEND]
    ax = fig.add_subplot(grid[1, 3])
    ax.axis("off")
    ax.legend(handles=handles, loc="upper left", fontsize=9, frameon=False, ncol=2,
              title="Top-K pixels (white outline = defect)", title_fontsize=9, alignment="left")

    # a row per method, as on the page
    for i, key in enumerate(keys, start=2):
        r, pic = ex.methods[key], pics.methods[key]
        ax = fig.add_subplot(grid[i, 0])
        show(ax, pics.grey, f"{r.label}: heatmap")
        im = ax.imshow(pic.heat, cmap=ListedColormap(palette(HEAT_CMAP)), vmin=0, vmax=1, alpha=0.72,
                       interpolation="nearest")
        outline(ax)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="percentile 1 → 99.5")
        show(fig.add_subplot(grid[i, 1]), pic.topk, f"{r.label}: top-K pixels" if ex.rankable
             else f"{r.label}: no top K (K = 0)")
        if ex.rankable:
            lines = [(r.label, 16, "bold"), (f"TKO {fmt(r.tko)}", 24, "bold"),
                     (f"{fmt_lift(r.lift)} over chance ({fmt(r.chance, 4)}) · IoU {fmt(r.iou)}", 11, "normal"),
                     (f"rank {rank_label(r.rank, ranks)}" + (f" · ★ {result_label(r.win_share)}"
                                                             if r.win_share > 0 else ""), 12, "bold")]
        else:
            lines = [(r.label, 16, "bold"), ("no defect pixels: not ranked", 11, "normal")]
        if "relative_delta" in r.extras:
            lines.append((ig_convergence(r.extras)[0], 10, "normal"))
        _text_lines(fig.add_subplot(grid[i, 2:]), lines)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return buf


# ----------------------------------------------------------------------------- HTML


def figure_grid(ex: Explanation, pics: Pictures, size: int = 240):
    """The per-image figure as one Bokeh grid, three per row, the panes panning and zooming
    together: the same figures the dashboard shows."""
    from bokeh.layouts import gridplot

    from pixel_evidence.dashboard.image_plots import heat_plot, recon_plot, rgb_plot, shared_ranges, show_extent

    h, w = ex.image.shape[:2]
    ranges = shared_ranges(max(h, w))
    show_extent(ranges, w, h)
    panes = [(rgb_plot(ranges, size, toolbar=True), ("Image", pics.image)),
             (rgb_plot(ranges, size), ("Ground-truth defect" if ex.k else "No defect (K = 0)", pics.mask_overlay)),
             (recon_plot(ranges, size), (pics.reconstruction_title, pics.reconstruction, pics.outline))]
    for key, r in ex.methods.items():
        pic = pics.methods[key]
        panes.append((heat_plot(ranges, size), (f"{r.label}: heatmap", pics.grey, pic.heat, pics.outline)))
        panes.append((rgb_plot(ranges, size), (f"{r.label}: top-K pixels", pic.topk)))
        panes.append((None, ()))
    for plot, data in panes:
        if plot is not None:
            plot.show(*data)
    return gridplot([p.figure if p is not None else None for p, _ in panes], ncols=3, toolbar_location="above")


def _summary_html(ex: Explanation) -> str:
    ranks = [r.rank for r in ex.methods.values()]
    rows = "".join(
        f"<tr><td><b>{plain(r.label)}</b></td><td style='font-size:20px'><b>{fmt(r.tko)}</b></td><td>{fmt_lift(r.lift)}</td>"
        f"<td>{fmt(r.iou)}</td><td>{rank_label(r.rank, ranks)}</td><td>{result_label(r.win_share)}</td>"
        + (f"<td>{ig_convergence(r.extras)[0]}</td>" if "relative_delta" in r.extras
           else "<td></td>") + "</tr>"
        for r in (ex.methods[m] for m in ranking_frame(ex)["method"]))
    legend = " ".join(f'<span style="background:{c};padding:0 9px;border:1px solid #333"></span>&nbsp;{name}&nbsp;&nbsp;'
                      for name, c, _ in PIXEL_LEGEND)
    status = "correct" if ex.correct else "<b style='color:#D55E00'>MISCLASSIFIED</b>"
    k_text = (f"K = {ex.k:,} defect pixels of N = {ex.n:,}; chance TKO = K/N = {ex.k / ex.n:.4f}" if ex.k
              else "No defect pixels (K = 0): nothing to rank, no winner.")
    return f"""
<div style="font-family:sans-serif;font-size:15px;line-height:1.5">
<h2 style="margin:4px 0">Pixel Evidence: {plain(ex.image_id)} (seed {ex.seed}, {plain(ex.split)} split)</h2>
<div>True class <b>{plain(ex.true_class)}</b>; predicted <b>{plain(ex.predicted_class)}</b>
({100 * float(np.max(ex.probabilities)):.0f}%, {status}); maps explain the {plain(ex.target_mode)} class
<b>{plain(ex.target_class)}</b>. {k_text}</div>
<table style="border-collapse:collapse;margin:6px 0" cellpadding="4">
<tr><th align="left">Method</th><th align="left">TKO</th><th align="left">Lift</th><th align="left">IoU</th>
<th align="left">Rank</th><th align="left">Result</th><th></th></tr>{rows}</table>
<div>Top-K pixels: {legend}. Ties at the cut-off count fractionally. Heatmaps are stretched from their own
1st to their 99.5th percentile for display only; white outline = ground-truth defect. Drag to pan, scroll to
zoom.</div>
</div>"""


def figure_html(ex: Explanation, pics: Pictures) -> io.BytesIO:
    """Standalone HTML (Bokeh JS inlined, works offline) of the per-image figure."""
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import FIXED_SIZING_MODE
    from bokeh.document import Document
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div
    from bokeh.resources import INLINE

    silence(FIXED_SIZING_MODE, True)  # the figures size their frames; the check does not apply
    root = column(Div(text=_summary_html(ex), width=1000), figure_grid(ex, pics))
    # a document of its own: Bokeh's current one is process-wide, and server sessions in other
    # threads swap it in and out
    Document().add_root(root)
    text = file_html(root, INLINE, f"Pixel Evidence: {ex.image_id} (seed {ex.seed}, {ex.split})")
    # Panel registers its own Bokeh extensions (tables, ESM shims) by server-relative path; the
    # figure uses none of them and a saved file cannot load them, so drop those references.
    text = re.sub(r'<script[^>]*src="static/[^"]*"[^>]*></script>\s*', "", text)
    text = re.sub(r'<link[^>]*href="static/[^"]*"[^>]*>\s*', "", text)
    buf = io.BytesIO(text.encode("utf-8"))
    buf.seek(0)
    return buf
