"""The critical-difference diagram (Demšar, JMLR 2006) of one :class:`MethodComparison`, as a
matplotlib figure (object API, no pyplot: safe in worker threads), its SVG and PNG files, and
its numbers as a table.

The diagram: each method's average rank on an axis (rank 1 = best, on the left), the better
half labelled on the left and the worse half on the right; a thick bar under the axis joins
methods that Nemenyi's test does not separate (:meth:`MethodComparison.cd_groups`, drawn as
they are, in their order); above the axis, the critical difference as a scale bar.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from pixel_evidence.metrics.significance import MethodComparison, SeedComparison

HOW_TO_READ = ("Methods joined by a bar are not significantly different (Nemenyi, alpha {alpha:g}); "
               "lower average rank is better.")

WIDTH_IN = 9.5             # 912 px on the page: fits the 1000-px main area of a laptop screen
LABEL_PT, TICK_PT = 11, 10
TOP_IN, FOOT_IN = 0.95, 0.45  # title (two lines) above, the reading line below
CD_IN, AXIS_IN = 0.35, 0.75   # scale bar and axis, from the top of the drawing area
BAR_STEP_IN, ROW_IN = 0.16, 0.3
CHAR_IN = LABEL_PT * 0.55 / 72  # a label character's mean width, to leave the labels room


def diagram_labels(comparison: MethodComparison, labels: Mapping[str, str]) -> list[str]:
    """Each method's label with its average rank, in rank order: "Saliency (1.77)"."""
    return [f"{labels.get(m, m)} ({r:.2f})" for m, r in zip(comparison.ranks["method"],
                                                             comparison.ranks["average_rank"])]


@dataclass(frozen=True)
class _Layout:
    """Where the parts go, in inches: the drawing area under the title, and the label margins."""

    names: list[str]
    left: int        # methods labelled on the left (the better half)
    bars_in: float   # the bars' band under the axis
    draw_in: float   # the drawing area's height
    margin_in: float

    @property
    def height_in(self) -> float:
        return TOP_IN + self.draw_in + FOOT_IN


def _layout(comparison: MethodComparison, labels: Mapping[str, str]) -> _Layout:
    k = comparison.n_methods
    names = diagram_labels(comparison, labels)
    left = math.ceil(k / 2)
    bars_in = BAR_STEP_IN * (len(comparison.cd_groups()) + 1)
    draw_in = AXIS_IN + bars_in + ROW_IN * max(left, k - left)
    return _Layout(names, left, bars_in, draw_in, min(3.2, 0.45 + CHAR_IN * max(len(n) for n in names)))


def cd_figure_size(comparison: MethodComparison, labels: Mapping[str, str]) -> tuple[float, float]:
    """(width, height) of :func:`cd_figure` in inches."""
    return WIDTH_IN, _layout(comparison, labels).height_in


def p_text(p: float) -> str:
    """"p = 0.012"; "p < 1e-300" for one below what a float holds (computed as 0); "p n/a" when undefined."""
    return "p n/a" if math.isnan(p) else "p < 1e-300" if p == 0 else f"p = {p:.2g}"


def cd_figure(comparison: MethodComparison, labels: Mapping[str, str], title: str):
    """The diagram of ``comparison`` (k methods, its CD and bars) as a matplotlib Figure.

    ``labels``: method key -> name shown (keys without one show as they are); ``title``: the
    first line of the title, the second says N blocks, alpha, CD and Friedman's p."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = comparison.n_methods
    ranks = list(comparison.ranks["average_rank"])
    groups = comparison.cd_groups()
    position = {m: i for i, m in enumerate(comparison.ranks["method"])}
    lay = _layout(comparison, labels)
    names, left, bars_in, draw_in, height = lay.names, lay.left, lay.bars_in, lay.draw_in, lay.height_in
    fig = Figure(figsize=(WIDTH_IN, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((lay.margin_in / WIDTH_IN, FOOT_IN / height, 1 - 2 * lay.margin_in / WIDTH_IN,
                       draw_in / height))
    ax.set_xlim(1, k)
    ax.set_ylim(draw_in, 0)  # y in inches from the top of the drawing area
    ax.axis("off")
    line = {"color": "#222", "linewidth": 1.2, "solid_capstyle": "butt", "clip_on": False}

    # the axis, rank 1 on the left
    ax.plot([1, k], [AXIS_IN, AXIS_IN], **line)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [AXIS_IN, AXIS_IN - 0.07], **line)
        ax.text(tick, AXIS_IN - 0.1, str(tick), ha="center", va="bottom", fontsize=TICK_PT)
    ax.text(1 - 0.02 * (k - 1), AXIS_IN, "average rank", ha="right", va="center", fontsize=TICK_PT, color="#555")
    # the critical difference as a scale bar from rank 1
    cd = comparison.critical_difference
    ax.plot([1, 1 + cd], [CD_IN, CD_IN], color="#222", linewidth=2, clip_on=False)
    for end in (1, 1 + cd):
        ax.plot([end, end], [CD_IN - 0.06, CD_IN + 0.06], **line)
    ax.text(1 + cd / 2, CD_IN - 0.09, f"CD = {cd:.3f}", ha="center", va="bottom", fontsize=TICK_PT)

    # each method: down from its rank to its row, then out to its label
    for i, (rank, name) in enumerate(zip(ranks, names)):
        on_left = i < left
        row = i if on_left else k - 1 - i  # the worst at the top on the right, so no lines cross
        y = AXIS_IN + bars_in + ROW_IN * (row + 0.5)
        edge = 1 - 0.02 * (k - 1) if on_left else k + 0.02 * (k - 1)
        ax.plot([rank, rank, edge], [AXIS_IN, y, y], **line)
        ax.text(edge, y, name, ha="right" if on_left else "left", va="center", fontsize=LABEL_PT,
                parse_math=False)  # a "$" in a name is a name, not mathematics

    # the bars: runs of methods no CD gap separates, slightly wider than their ranks
    for j, group in enumerate(groups):
        first, last = ranks[position[group[0]]], ranks[position[group[-1]]]
        y = AXIS_IN + BAR_STEP_IN * (j + 1)
        ax.plot([first - 0.04, last + 0.04], [y, y], color="#111", linewidth=4, solid_capstyle="round",
                clip_on=False)

    fig.text(0.01, 1 - 0.1 / height, title, ha="left", va="top", fontsize=13, fontweight="bold", parse_math=False)
    fig.text(0.01, 1 - 0.45 / height,
             f"N = {comparison.n_blocks} blocks, k = {k} methods, Nemenyi alpha = {comparison.alpha:g}, "
             f"CD = {cd:.3f}; Friedman {p_text(comparison.friedman_p)}", ha="left", va="top", fontsize=11,
             color="#333")
    fig.text(0.01, 0.12 / height, HOW_TO_READ.format(alpha=comparison.alpha), ha="left", va="bottom",
             fontsize=10, color="#333")
    return fig


def cd_svg(comparison: MethodComparison, labels: Mapping[str, str], title: str) -> str:
    """The diagram as SVG text; labels stay text (not glyph outlines), so they can be found and edited."""
    from matplotlib import rc_context

    fig = cd_figure(comparison, labels, title)
    buf = io.StringIO()
    # rcParams are process-wide; nothing else in the process sets this one
    with rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def cd_png(comparison: MethodComparison, labels: Mapping[str, str], title: str, dpi: int = 150) -> bytes:
    buf = io.BytesIO()
    cd_figure(comparison, labels, title).savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def cd_numbers(result: SeedComparison, labels: Mapping[str, str], **context: str) -> pd.DataFrame:
    """The diagram's numbers, one row per method in rank order.

    ``context`` (e.g. score, split, method set) comes first, one column each; then
    :meth:`MethodComparison.cd_table`'s columns (``groups``: the bars the method belongs to,
    numbered as drawn, top down) with ``label`` after ``method`` and the mean score; then the
    pooled test's N, k, alpha and Friedman / Iman-Davenport results; and, per seed, how many
    seeds separate the method from the next one down by Nemenyi (empty for the last).
    """
    pooled = result.pooled
    table = pooled.cd_table()
    table.insert(1, "label", [labels.get(m, m) for m in table["method"]])
    table.insert(3, "mean_score", pooled.ranks["mean_score"].to_numpy())
    for name, value in context.items():
        table.insert(list(context).index(name), name, value)
    for column in ("n_blocks", "n_methods", "alpha", "friedman_statistic", "friedman_p",
                   "iman_davenport_statistic", "iman_davenport_p"):
        table[column] = getattr(pooled, column)
    separated = {frozenset(p): n for *p, n in result.seed_counts[["method_a", "method_b", "n_nemenyi_significant"]]
                 .itertuples(index=False)}
    order = list(table["method"])
    table["next_method"] = order[1:] + [""]
    table["seeds_separating_next"] = [separated[frozenset((a, b))] if b else pd.NA
                                      for a, b in zip(order, table["next_method"])]
    table["n_seeds"] = len(result.per_seed)
    return table
