"""What every section of the summary tab shares: its store, its column, its words."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from pixel_evidence.analyses import analysis
from pixel_evidence.dashboard.charts import ChartPane, drawing, hv
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.results import ResultsStore, analysis_command

SPLIT_NOTE = "change the split in the sidebar"


def text(body: str) -> pn.pane.HTML:
    return pn.pane.HTML(f'<div style="font-size:15px;line-height:1.5;max-width:1100px">{body}</div>',
                        sizing_mode="stretch_width")


def legend(colours: dict[str, str], present: set[str]) -> pn.pane.HTML:
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;gap:6px;margin-right:16px">'
        f'<span style="width:18px;height:18px;background:{c};border:1px solid #333;display:inline-block"></span>'
        f'<b>{plain(label)}</b></span>' for label, c in sorted(colours.items()) if label in present)
    return pn.pane.HTML(f'<div style="font-size:15px">{items}</div>', sizing_mode="stretch_width")


def chart(element: Any) -> ChartPane:
    return ChartPane(element, linked_axes=False, sizing_mode="fixed")


# the main area beside the sidebar on a 1366-px laptop screen
MAIN_WIDTH = 1000


def side_by_side(items: list[Any], widths: list[int]) -> list[Any]:
    """``items`` (charts, words) of those ``widths`` in px next to each other when they fit in
    ``MAIN_WIDTH``, else one under the other: the objects to put in the section's column.

    A Row, not a FlexBox that would wrap them: in a FlexBox of this tab every chart kept a
    0 × 0 plot frame (Bokeh 3.9, Panel 1.9), its axes and labels piled in a corner, while the
    same charts in a Row or a Column are laid out. A small app with charts in a FlexBox, even
    ones that arrive after the page is drawn, did not show it, so the cause is not pinned down.
    The browser test of the page at 1366 and 1920 px checks every summary chart's frame."""
    return [pn.Row(*items)] if sum(widths) <= MAIN_WIDTH else list(items)


def cell_labels(df: pd.DataFrame, kdims: list[str], column: str, dark: pd.Series) -> Any:
    """Cell texts of a heatmap: white on dark cells, near-black elsewhere."""
    return (hv().Labels(df[~dark], kdims, column).opts(text_font_size="14pt", text_color="#111")
            * hv().Labels(df[dark], kdims, column).opts(text_font_size="14pt", text_color="white"))


class Section(pn.viewable.Viewer):
    """One part of the summary tab: a column of plots and words drawn from the results store,
    and the tables behind them, published to the store under ``key``."""

    store = param.ClassSelector(class_=ResultsStore)
    key = "section"
    css_classes: list[str] = []

    def __init__(self, store: ResultsStore, **params: Any):
        super().__init__(store=store, **params)
        self._column = pn.Column(sizing_mode="stretch_width", css_classes=self.css_classes)
        self.build()
        self._draw()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._column

    def build(self) -> None:
        """The section's widgets, made once (before the first drawing)."""

    def _draw(self) -> None:
        """Draw from the store; subclasses redraw on the store's and the state's changes they follow."""
        raise NotImplementedError

    def show(self, objects: list[Any], tables: list[tuple[str, pd.DataFrame]]) -> None:
        self._column.objects = objects
        self.store.publish(self.key, tables)


class AnalysisSection(Section):
    """A section over one analysis table (agreement, faithfulness, sanity) of the state's split."""

    question = ""  # the heading, before the split

    @param.depends("store.results", "store.state.split", watch=True)
    @drawing
    def _draw(self) -> None:
        split = self.store.state.split
        heading = f"## {self.question} ({split} split)"
        rows = self.split_rows(heading)
        if rows is not None:
            self.draw_rows(heading, split, rows)

    def draw_rows(self, heading: str, split: str, rows: pd.DataFrame) -> None:
        """Draw the split's rows (there are some) under ``heading``."""
        raise NotImplementedError

    def split_rows(self, title: str) -> pd.DataFrame | None:
        """The current split's rows of the analysis. When there are none, the section says why
        (file missing, or only other splits computed), its tables are cleared and None returned."""
        df = self.store.analysis(self.key)
        split = self.store.state.split
        rows = None if df is None else df[df["split"] == split]
        if rows is not None and not rows.empty:
            return rows
        if rows is None:
            why = (f"Not computed yet ({analysis(self.key).file} is missing). Make it with "
                   f"<code>{plain(analysis_command(self.store.engine))}</code>, then press “Reload results”.")
        else:
            done = [s for s in ("test", "train") if s in set(df["split"])]
            why = (f"No {self.key} rows for the {plain(split)} split; computed for the "
                   f"{' and '.join(done) or 'no'} split{'s' if len(done) > 1 else ''} ({SPLIT_NOTE}).")
        self.show([pn.pane.Markdown(title), text(why)], [])
        return None
