"""The numbers behind the plots: each section's tables, one collapsed card per table."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from pixel_evidence.analyses import ANALYSES
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.results import ResultsStore

# the cards follow the page's order of sections
ORDER = ("win", "cd", "tko", "categories", *ANALYSES, "curves", "confusion")


def card(title: str, df: pd.DataFrame) -> pn.Card:
    df = df.copy()
    for col in df.columns:
        if pd.api.types.is_float_dtype(df[col]):
            df[col] = df[col].round(4)
    # Tabulator writes column titles, and the card its title, as HTML: class names are columns here
    return pn.Card(pn.widgets.Tabulator(df, disabled=True, show_index=False, sizing_mode="stretch_width",
                                        pagination="local", page_size=12, layout="fit_data_fill",
                                        titles={c: plain(c) for c in df.columns}),
                   title=plain(title), collapsed=True, sizing_mode="stretch_width")


class NumbersSection(pn.viewable.Viewer):
    store = param.ClassSelector(class_=ResultsStore)

    def __init__(self, store: ResultsStore, **params: Any):
        super().__init__(store=store, **params)
        self._shown: dict[str, tuple[list, list[pn.Card]]] = {}  # section -> (its tables, their cards)
        self._column = pn.Column(sizing_mode="stretch_width")
        self._draw()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._column

    @param.depends("store.tables", watch=True)
    def _draw(self) -> None:
        # only a section whose tables changed gets new cards: a split change rebuilds four, not all
        for section, tables in self.store.tables.items():
            if section not in self._shown or self._shown[section][0] is not tables:
                self._shown[section] = (tables, [card(title, df) for title, df in tables])
        cards = [c for section in ORDER if section in self._shown for c in self._shown[section][1]]
        self._column.objects = ([pn.pane.Markdown("## The numbers behind the plots")] + cards) if cards else []
