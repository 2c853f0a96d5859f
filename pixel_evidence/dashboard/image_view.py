"""The per-image view: image, mask, reconstruction, prediction; one row per method; ranking.

It draws what the :class:`~pixel_evidence.dashboard.store.ExplanationStore` publishes and reads nothing
else that changes. Every pane is built once and updated in place: a new image replaces the
arrays of the figures (:mod:`pixel_evidence.dashboard.image_plots`) and the text of the HTML panes; only a
newly chosen method gets a new row. The panes' sizes follow the window (:meth:`ImageView.resize`,
rules in :mod:`pixel_evidence.dashboard.sizes`): at 1366 × 768 the winner, the ranking and the first
method's pictures are in the first screen.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param

from pixel_evidence.dashboard.glossary import header_tooltips
from pixel_evidence.dashboard.image_html import (NEEDS_MASKS_NOTICE, highlight_winner, legend_html, method_card_html,
                                                 prediction_html, slow_warning_html, table_frame, title_html,
                                                 verdict_html)
from pixel_evidence.dashboard.image_plots import (ImagePlot, heat_plot, one_message, recon_plot, rgb_plot,
                                                  shared_ranges, show_extent)
from pixel_evidence.dashboard.pictures import Pictures
from pixel_evidence.dashboard.progress_note import ProgressNote
from pixel_evidence.dashboard.sizes import DEFAULT, METHOD_CARD, PREDICTION, PaneSizes
from pixel_evidence.dashboard.store import ExplanationStore
from pixel_evidence.engine.explanation import Explanation


def _table_height(rows: int, presenting: bool) -> int:
    return (46 + 40 * rows) if presenting else (38 + 31 * rows)


def _widths(presenting: bool) -> dict[str, int]:
    """The name column fits "Integrated Gradients" in the mode's type."""
    return {"Method": 235 if presenting else 170}


class MethodRow:
    """One method's heatmap, top-K picture (only on data with masks) and card, side by side."""

    def __init__(self, ranges: Any, size: int, has_masks: bool = True, stylesheets: list[str] | None = None):
        self.heat: ImagePlot = heat_plot(ranges, size)
        self.topk: ImagePlot = rgb_plot(ranges, size)
        self.card = pn.pane.HTML("", width=METHOD_CARD - 20, margin=(4, 10), stylesheets=list(stylesheets or []))
        self.topk_pane = pn.pane.Bokeh(self.topk.figure, sizing_mode="fixed", visible=has_masks)
        self.row = pn.FlexBox(pn.pane.Bokeh(self.heat.figure, sizing_mode="fixed"), self.topk_pane,
                              self.card, css_classes=["pe-method-row"], sizing_mode="stretch_width")

    def show(self, ex: Explanation, key: str, pics: Pictures, card: str) -> None:
        pic = pics.methods[key]
        self.heat.show(f"{pic.label}: heatmap", pics.grey, pic.heat, pics.outline)
        self.topk.show(f"{pic.label}: top-K pixels" if ex.rankable else f"{pic.label}: no top K", pic.topk)
        self.card.object = card

    def resize(self, size: int) -> None:
        self.heat.resize(size)
        self.topk.resize(size)


class ImageView(pn.viewable.Viewer):
    """Per-image panel drawn from an :class:`ExplanationStore`."""

    store = param.ClassSelector(class_=ExplanationStore)

    def __init__(self, store: ExplanationStore, **params: Any):
        super().__init__(store=store, **params)
        self.catalogue = store.catalogue
        self._title = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["pe-title"])
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        # outside the layout that gets the loading overlay: it explains the wait while it lasts
        self._slow = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                                   css_classes=["pe-slow-warning"])
        # how far the slow methods are, with a button that stops them (also outside the overlay)
        self._progress = ProgressNote("forwards", "pe-map-progress")
        self._stopped = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width",
                                      css_classes=["pe-stopped"])
        self.sizes: PaneSizes = DEFAULT
        self.presenting = False  # presentation mode: larger type, so taller table rows
        self.on_new_panes: Any = None  # called after new method rows were made (they need the mode's style)
        self.card_css: list[str] = []  # the mode's style sheet for new cards, from their first drawing
        self._ranges = shared_ranges(max(self.catalogue.image_sizes.values(), default=DEFAULT.top))
        self._image = rgb_plot(self._ranges, DEFAULT.top, toolbar=True)
        self._mask = rgb_plot(self._ranges, DEFAULT.top)
        self._recon = recon_plot(self._ranges, DEFAULT.top)
        self._pred = pn.pane.HTML("", width=PREDICTION - 20, margin=(4, 10))
        self._verdict = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        # the columns as wide as their contents ("Integrated Gradients" whole), no sort arrows
        self._table = pn.widgets.Tabulator(
            pd.DataFrame(columns=["Method", "TKO", "Lift", "IoU", "Chance", "Rank", "Result"]), disabled=True,
            show_index=False, sizing_mode="stretch_width", layout="fit_data_stretch", height=130, widths=_widths(False),
            configuration={"columnDefaults": {"headerSort": False}}, margin=(2, 10), header_tooltips=header_tooltips(),
            stylesheets=[":host .tabulator {font-size: 15px;}"])
        self._table.style.apply(highlight_winner, axis=1)
        masks = self.catalogue.has_masks
        self._legend = pn.pane.HTML(legend_html(), width=300, visible=masks, margin=(0, 10))
        # mask-free data: one notice instead of the mask, the ranking and every top-K picture, and no
        # reconstruction (its decoder was never trained: there were no masks to learn)
        self._needs_masks = pn.pane.Alert(NEEDS_MASKS_NOTICE, alert_type="info", visible=not masks,
                                          sizing_mode="stretch_width", css_classes=["pe-needs-masks"])
        self._ranking_box = pn.Column(self._verdict, self._table, width=DEFAULT.ranking)
        # the pixel colours beside the ranking: a column of the page that is otherwise empty
        self._ranking = pn.FlexBox(self._ranking_box, self._legend, sizing_mode="stretch_width", visible=masks,
                                   css_classes=["pe-ranking"])
        self._rows: dict[str, MethodRow] = {}
        self._methods_col = pn.Column(sizing_mode="stretch_width")
        self._content = pn.Column(
            self._needs_masks,
            pn.FlexBox(*[pn.pane.Bokeh(p.figure, sizing_mode="fixed", visible=masks or p is self._image)
                         for p in (self._image, self._mask, self._recon)],
                       self._pred, sizing_mode="stretch_width"),
            self._ranking,
            self._methods_col,
            sizing_mode="stretch_width")
        self._layout = pn.Column(self._title, self._alert, self._content, sizing_mode="stretch_width",
                                 min_height=400)
        self._on_request()
        self._on_answer()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._slow, self._progress, self._stopped, self._layout, sizing_mode="stretch_width")

    def resize(self, sizes: PaneSizes, presenting: bool = False) -> None:
        """Panes and ranking at ``sizes`` (the window changed or the page reported its size) and
        for the mode (presentation mode's type needs taller rows and a wider name column)."""
        self.sizes, self.presenting = sizes, presenting
        self._table.param.update(widths=_widths(presenting), height=_table_height(len(self._table.value), presenting))
        for plot in (self._image, self._mask, self._recon):
            plot.resize(sizes.top)
        for row in self._rows.values():
            row.resize(sizes.method)
        self._ranking_box.width = sizes.ranking

    @param.depends("store.request", watch=True)
    def _on_request(self) -> None:
        req = self.store.request
        warning = slow_warning_html(self.catalogue, req.methods) if req is not None else ""
        self._slow.param.update(object=warning, visible=bool(warning))

    @param.depends("store.tracker", watch=True)
    def _on_tracker(self) -> None:
        tracker, req = self.store.tracker, self.store.request
        if tracker is None:
            self._progress.stop()
            return
        slow = [self.catalogue.method_labels[m] for m in req.methods if m in self.catalogue.slow_methods]
        self._progress.follow(tracker, f"Computing {', '.join(slow)} for {req.image_id}")

    @param.depends("store.stopped", watch=True)
    def _on_stopped(self) -> None:
        self._stopped.param.update(object=self.store.stopped, visible=bool(self.store.stopped))

    @param.depends("store.computing", watch=True)
    def _on_computing(self) -> None:
        self._layout.loading = self.store.computing

    @param.depends("store.explanation", "store.error", watch=True)
    def _on_answer(self) -> None:
        store = self.store
        if store.error:
            self._alert.object = store.error
            self._alert.visible = True
            self._content.visible = False
        elif store.explanation is not None:
            with one_message():
                self._draw(store.explanation, store.pictures)

    def _noise_of(self, ex: Explanation) -> tuple[dict[str, float] | None, int]:
        """The studied methods' TKO spreads on this image and the study's draws; (None, 0) unstudied."""
        noise = self.catalogue.noise
        if noise is None or not noise.covers(ex.seed, ex.split):
            return None, 0
        methods = self.catalogue.noise_methods
        return {m: v for m, v in noise.spreads(ex.image_id).items() if m in methods}, noise.n_draws

    def _draw(self, ex: Explanation, pics: Pictures) -> None:
        self._alert.visible = False
        self._content.visible = True
        show_extent(self._ranges, ex.image.shape[1], ex.image.shape[0])
        self._image.show("Image", pics.image)
        self._mask.show("Ground truth" if ex.k else "Ground truth: no defect", pics.mask_overlay)
        self._recon.show(pics.reconstruction_title, pics.reconstruction, pics.outline)
        self._pred.object = prediction_html(ex, self.catalogue.has_masks)
        self._verdict.object = verdict_html(ex, *self._noise_of(ex))
        self._table.param.update(value=table_frame(ex), height=_table_height(len(ex.methods), self.presenting))
        for key in ex.methods:
            if key not in self._rows:
                self._rows[key] = MethodRow(self._ranges, self.sizes.method, self.catalogue.has_masks, self.card_css)
            self._rows[key].show(ex, key, pics, method_card_html(ex, key, self.catalogue, pics.methods[key]))
        for key in [k for k in self._rows if k not in ex.methods]:
            del self._rows[key]
        rows = [self._rows[key].row for key in ex.methods]
        if [id(r) for r in self._methods_col.objects] != [id(r) for r in rows]:
            self._methods_col.objects = rows
            if self.on_new_panes is not None:
                self.on_new_panes()
        # the title goes last: when it names the new image, everything else is already updated
        self._title.object = title_html(ex, self.catalogue)
