"""Downloads, built in memory (nothing is written to disk): PNG and HTML figures, CSV tables."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pandas as pd

from engine.results import TABLE_COLUMNS, ig_columns

from .colours import HEAT_CMAP, PIXEL_LEGEND, RECON_CMAP
from .formatting import fmt, fmt_lift, ig_convergence, rank_label, result_label
from .image_html import ranking_frame
from .pictures import Pictures

# tko_table.csv's columns, with the method's label after its key
RANKING_COLUMNS = [c for col in TABLE_COLUMNS for c in ((col, "label") if col == "method" else (col,))]


def _csv_bytes(df: pd.DataFrame) -> io.BytesIO:
    buf = io.BytesIO(df.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    buf.seek(0)
    return buf


def ranking_table(ex: Any) -> pd.DataFrame:
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


def ranking_csv(ex: Any) -> io.BytesIO:
    return _csv_bytes(ranking_table(ex))


def table_csv(df: pd.DataFrame) -> io.BytesIO:
    return _csv_bytes(df)


def file_stem(ex: Any) -> str:
    return f"pixel-evidence_seed{ex.seed}_{ex.split}_{ex.image_id}"


# ----------------------------------------------------------------------------- PNG


def figure_png(ex: Any, pics: Pictures, dpi: int = 110) -> io.BytesIO:
    """The per-image figure drawn with matplotlib's object API (no pyplot: thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    keys = list(ex.methods)
    rows = 1 + len(keys)
    fig = Figure(figsize=(12, 3.3 * rows + 0.9), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 3, hspace=0.28, wspace=0.08)
    status = "correct" if ex.correct else "MISCLASSIFIED"
    fig.suptitle(f"{ex.image_id} · seed {ex.seed} · {ex.split} split · true {ex.true_class} · predicted "
                 f"{ex.predicted_class} ({100 * float(np.max(ex.probabilities)):.0f}%, {status})",
                 fontsize=13, fontweight="bold")

    def outline(ax):
        if ex.k:
            ax.contour(np.asarray(ex.mask, dtype=float), levels=[0.5], colors="white", linewidths=0.9)

    def show(ax, arr, title, **kw):
        im = ax.imshow(arr, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        return im

    show(fig.add_subplot(grid[0, 0]), pics.image, "Image")
    show(fig.add_subplot(grid[0, 1]), pics.mask_overlay, "Ground-truth defect" if ex.k else "No defect (K = 0)")
    ax = fig.add_subplot(grid[0, 2])
    title = pics.reconstruction_title + ("" if ex.reconstruction is None else " P(defect)")
    im = show(ax, pics.reconstruction, title, cmap=RECON_CMAP, vmin=0, vmax=1)
    outline(ax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    ranks = [r.rank for r in ex.methods.values()]
    for i, key in enumerate(keys, start=1):
        r, pic = ex.methods[key], pics.methods[key]
        ax = fig.add_subplot(grid[i, 0])
        show(ax, pics.grey, "")
        im = ax.imshow(pic.heat, cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.72, interpolation="nearest")
        ax.set_title(f"{r.label}\nheatmap ÷ its 99.5th percentile", fontsize=11)
        outline(ax)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax = fig.add_subplot(grid[i, 1])
        show(ax, pic.topk, f"{r.label}\ntop-K pixels" if ex.rankable else f"{r.label}\nno top K (K = 0)")
        ax = fig.add_subplot(grid[i, 2])
        ax.axis("off")
        if ex.rankable:
            lines = [(r.label, 16, "bold"), (f"TKO {fmt(r.tko)}", 22, "bold"),
                     (f"lift {fmt_lift(r.lift)} over chance ({fmt(r.chance, 4)})", 12, "normal"),
                     (f"IoU {fmt(r.iou)} · rank {rank_label(r.rank, ranks)}", 12, "normal"),
                     (("★ " + result_label(r.win_share)) if r.win_share > 0 else " ", 13, "bold")]
        else:
            lines = [(r.label, 16, "bold"), ("no defect pixels: not ranked", 12, "normal")]
        if "relative_delta" in r.extras:
            lines.append((ig_convergence(r.extras)[0], 11, "normal"))
        y = 0.95
        for text, size, weight in lines:
            ax.text(0.02, y, text, fontsize=size, fontweight=weight, va="top", transform=ax.transAxes)
            y -= 0.06 + size / 110
    handles = [Patch(facecolor=c, edgecolor="#333", label=name) for name, c, _ in PIXEL_LEGEND]
    handles.append(Patch(facecolor="none", edgecolor="#333", label="white outline = defect"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=10, frameon=False,
               title="Top-K pixels (ties at the cut-off count fractionally)", title_fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return buf


# ----------------------------------------------------------------------------- HTML


def figure_grid(ex: Any, pics: Pictures, size: int = 240):
    """The per-image figure as one Bokeh grid, three per row, the panes panning and zooming
    together: the same figures the dashboard shows."""
    from bokeh.layouts import gridplot

    from .image_plots import heat_plot, recon_plot, rgb_plot, shared_ranges, show_extent

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


def _summary_html(ex: Any) -> str:
    ranks = [r.rank for r in ex.methods.values()]
    rows = "".join(
        f"<tr><td><b>{r.label}</b></td><td style='font-size:20px'><b>{fmt(r.tko)}</b></td><td>{fmt_lift(r.lift)}</td>"
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
<h2 style="margin:4px 0">Pixel Evidence: {ex.image_id} (seed {ex.seed}, {ex.split} split)</h2>
<div>True class <b>{ex.true_class}</b>; predicted <b>{ex.predicted_class}</b>
({100 * float(np.max(ex.probabilities)):.0f}%, {status}); maps explain the {ex.target_mode} class
<b>{ex.target_class}</b>. {k_text}</div>
<table style="border-collapse:collapse;margin:6px 0" cellpadding="4">
<tr><th align="left">Method</th><th align="left">TKO</th><th align="left">Lift</th><th align="left">IoU</th>
<th align="left">Rank</th><th align="left">Result</th><th></th></tr>{rows}</table>
<div>Top-K pixels: {legend}. Ties at the cut-off count fractionally. Heatmaps are divided by their own
99.5th percentile for display only; white outline = ground-truth defect. Drag to pan, scroll to zoom.</div>
</div>"""


def figure_html(ex: Any, pics: Pictures) -> io.BytesIO:
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
