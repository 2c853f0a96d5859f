"""The summary tab: the results' status, then one section viewer per question, all over one
:class:`~pixel_evidence.dashboard.summary.results.ResultsStore`."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.agreement import AgreementSection
from pixel_evidence.dashboard.summary.categories import CategoriesSection
from pixel_evidence.dashboard.summary.confusion import ConfusionSection
from pixel_evidence.dashboard.summary.critical_difference import CriticalDifferenceSection
from pixel_evidence.dashboard.summary.distributions import TkoSection
from pixel_evidence.dashboard.summary.faithfulness import FaithfulnessSection
from pixel_evidence.dashboard.summary.noise import NoiseSection
from pixel_evidence.dashboard.summary.numbers import NumbersSection
from pixel_evidence.dashboard.summary.results import ResultsStore, evaluate_command
from pixel_evidence.dashboard.summary.sanity import SanitySection
from pixel_evidence.dashboard.summary.training import TrainingSection
from pixel_evidence.dashboard.summary.win_rates import WinRatesSection
from pixel_evidence.results import stale_seeds

SUMMARY_NEEDS_MASKS = ("No defect masks in this data: win rates and TKO need masks and are not shown; agreement, "
                       "deletion/insertion and the randomization check are below.")


class SummaryView(pn.viewable.Viewer):
    """Across-seed plots and the tables behind them."""

    store = param.ClassSelector(class_=ResultsStore)

    def __init__(self, store: ResultsStore, **params: Any):
        super().__init__(store=store, **params)
        self._reload = pn.widgets.Button(label="Reload results", width=140)
        self._reload.on_click(lambda _e: store.load())
        self._intro = pn.pane.HTML("", sizing_mode="stretch_width")
        self._notice = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width")
        self.win = WinRatesSection(store)
        self.cd = CriticalDifferenceSection(store)
        self.tko = TkoSection(store)
        self.agreement = AgreementSection(store)
        self.faithfulness = FaithfulnessSection(store)
        self.sanity = SanitySection(store)
        self.curves = TrainingSection(store)
        self.confusion = ConfusionSection(store)
        self.categories = CategoriesSection(store)
        self.noise = NoiseSection(store)
        self.numbers = NumbersSection(store)
        # mask-free data: no win rates, no TKO (the notice says so), the rest as usual
        by_mask = (self.win, self.cd, self.tko) if store.state.catalogue.has_masks else ()
        self._layout = pn.Column(
            pn.FlexBox(self._reload, self._intro, sizing_mode="stretch_width"), self._notice,
            *by_mask, self.categories, self.noise, self.agreement, self.faithfulness, self.sanity, self.curves,
            self.confusion, self.numbers, sizing_mode="stretch_width")
        self._draw()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("store.results", watch=True)
    def _draw(self) -> None:
        store, res = self.store, self.store.results
        command = plain(evaluate_command(store.engine))
        counted = (res.summary or {}).get("counted_images", "correctly classified defect images")
        self._intro.object = f"""
<div style="font-size:15px;line-height:1.5">
<b>Win rate</b> = share of the {plain(counted)} on which a method has the highest score
(Top-K overlap unless you choose another score below); when k methods tie for first, each gets 1/k of that
image. Good images (no defect pixels) are not counted. Boxes show the spread <i>across seeds</i> (hover for the
numbers). <b>TKO</b> is beside its chance level K/N (the expected TKO of a random map), shown as the grey box.<br>
<span style="color:#555">Results folder: {plain(str(store.directory))}</span></div>"""
        notes = [] if store.state.catalogue.has_masks else [SUMMARY_NEEDS_MASKS]
        if not res.available:
            notes.append(f"No evaluation results in {plain(store.directory)} yet. Make them with <code>{command}</code> "
                         "(then press “Reload results”). Training curves below come from the checkpoints.")
        notes += [plain(p) for p in res.problems]
        stale = stale_seeds(res, store.engine.pool.meta) if res.available else []
        if stale:
            notes.append(f"Results of seed(s) {', '.join(map(str, stale))} were computed with other weights "
                         f"than the current models; rerun <code>{command} --force</code>.")
        self._notice.param.update(object="<br>".join(notes), alert_type="warning" if notes else "info",
                                  visible=bool(notes))
