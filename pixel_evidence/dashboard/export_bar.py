"""The sidebar's download buttons: the current image's figure and ranking, the seed's results.

The files are built in memory when a button is pressed (see :mod:`pixel_evidence.dashboard.export`); the
bar reads the explanation store and the results store, nothing else.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from pixel_evidence.dashboard import export
from pixel_evidence.dashboard.store import ExplanationStore
from pixel_evidence.dashboard.summary import ResultsStore
from pixel_evidence.engine.explanation import Explanation


class ExportBar(pn.viewable.Viewer):
    store = param.ClassSelector(class_=ExplanationStore)
    results = param.ClassSelector(class_=ResultsStore)

    def __init__(self, store: ExplanationStore, results: ResultsStore, **params: Any):
        super().__init__(store=store, results=results, **params)
        self.png = pn.widgets.FileDownload(callback=self._png, filename="figure.png", label="Figure (PNG)",
                                           color="primary", sizing_mode="stretch_width")
        self.html = pn.widgets.FileDownload(callback=self._html, filename="figure.html",
                                            label="Figure (HTML, works offline)", sizing_mode="stretch_width")
        self.ranking = pn.widgets.FileDownload(callback=self._ranking, filename="ranking.csv",
                                               label="Ranking of this image (CSV)", sizing_mode="stretch_width")
        self.rows = pn.widgets.FileDownload(callback=self._rows, filename="results.csv",
                                            label="Results of this seed (CSV)", sizing_mode="stretch_width")
        self._names()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.png, self.html, self.ranking, self.rows, sizing_mode="stretch_width")

    def _shown(self) -> Explanation | None:
        """The explanation on screen, or None: after an error (an empty class, say) the store
        still holds the last answer, which is not what the page shows."""
        return None if self.store.error else self.store.explanation

    @param.depends("store.explanation", "store.error", "store.request", "results.results", watch=True)
    def _names(self) -> None:
        ex = self._shown()
        for button in (self.png, self.html, self.ranking):
            button.disabled = ex is None
        if ex is not None:
            stem = export.file_stem(ex)
            self.png.filename = f"{stem}.png"
            self.html.filename = f"{stem}.html"
            self.ranking.filename = f"{stem}_ranking.csv"
        seed = self.store.request.seed
        self.rows.filename = f"pixel-evidence_seed{seed}_results.csv"
        self.rows.disabled = not self.results.results.available
        self.rows.label = (f"Results of seed {seed} (CSV)" if not self.rows.disabled
                           else f"Results of seed {seed}: none yet")

    def _png(self):
        ex = self._shown()
        return export.figure_png(ex, self.store.pictures) if ex is not None else None

    def _html(self):
        ex = self._shown()
        return export.figure_html(ex, self.store.pictures) if ex is not None else None

    def _ranking(self):
        ex = self._shown()
        return export.ranking_csv(ex) if ex is not None else None

    def _rows(self):
        """This seed's rows of ``tko_table.csv``; without results, the current image's ranking."""
        res = self.results.results
        if res.available:
            return export.table_csv(res.seed_rows(self.store.request.seed))
        return self._ranking()
