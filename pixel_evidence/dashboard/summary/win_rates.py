"""Which method wins? Win-rate boxes per class and split across seeds, under the chosen score."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from pixel_evidence.dashboard.charts import drawing, hv
from pixel_evidence.dashboard.formatting import score_name
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.results import evaluate_command
from pixel_evidence.dashboard.summary.section import Section, chart, legend, text
from pixel_evidence.metrics.scores import EXTRA_SCORES, LOCALISATION_SCORES
from pixel_evidence.results import OVERALL, win_rate_stats

ALL_CLASSES = "all classes"


def _hide_inner_labels(plot: Any, _element: Any) -> None:
    """Nested categorical axis: keep the class names, drop the crowded method names (see legend)."""
    for axis in plot.state.xaxis:
        axis.major_label_text_font_size = "0pt"
        if hasattr(axis, "group_text_font_size"):
            axis.group_text_font_size = "15px"


class WinRatesSection(Section):
    key = "win"

    def build(self) -> None:
        # the choice lives in the shared state, so that it is part of the page URL; the widget
        # follows the state in _draw (a two-way link would replay a value the state refused)
        self._score_select = pn.widgets.Select(label="Winner decided by", options={score_name("tko"): "tko"},
                                               value="tko", width=300, css_classes=["pe-score-select"])
        self._score_select.param.watch(lambda e: setattr(self.store.state, "score", e.new), "value")

    @param.depends("store.results", "store.state.score", watch=True)
    @drawing
    def _draw(self) -> None:
        store = self.store
        self._score_select.options = {score_name(s): s for s in store.scores}
        score = store.state.score
        if score not in store.scores:
            return  # the store falls back to TKO, and the section draws again
        self._score_select.value = score
        res = store.results
        rates = store.win_rates()
        if not res.available or rates.empty:
            self.show([], [])
            return
        name = LOCALISATION_SCORES[score].short
        # every score's meaning, the one deciding now in full colour
        notes = "<br>".join(
            f"<span style='color:{'#111' if s == score else '#777'}'><b>{plain(score_name(s))}</b>: "
            f"{plain(LOCALISATION_SCORES[s].note)}</span>" for s in store.scores)
        if len(res.scores) < 2:
            others = plain(", ".join(LOCALISATION_SCORES[s].short for s in EXTRA_SCORES))
            notes += (f"<br><span style='color:#555'>Other scores ({others}): "
                      f"<code>{plain(evaluate_command(store.engine))} --metrics {' '.join(EXTRA_SCORES)}"
                      "</code></span>")
        head = [pn.pane.Markdown("## Which method wins?"),
                pn.FlexBox(self._score_select, text(notes), sizing_mode="stretch_width")]
        tables = [(f"Win rates across seeds (winner by {name})", store.with_labels(win_rate_stats(rates), at=2))]
        plots = self._boxes(rates, name)
        if plots:
            self.show([*head, legend(store.colours, {store.label(m) for m in rates["method"]}),
                       *[chart(p) for p in plots]], tables)
        else:
            self.show([*head, pn.pane.Alert(
                f"No win rates by {name}: no seed has a correctly classified defect image with this score.",
                alert_type="info")], tables)

    def _boxes(self, rates: Any, name: str) -> list:
        """One box plot per split: a box per class and method, over the seeds."""
        colours = self.store.colours
        rates = rates.copy()
        rates["Method"] = [self.store.label(m) for m in rates["method"]]
        # HoloViews sorts the class axis alphabetically: "all classes" lands first, where it reads best
        rates["class"] = rates["class"].replace({OVERALL: ALL_CLASSES})
        order = [ALL_CLASSES] + [c for c in sorted(rates["class"].unique()) if c != ALL_CLASSES]
        plots = []
        for split in [s for s in ("test", "train") if s in set(rates["split"])]:
            d = rates[(rates["split"] == split) & rates["win_rate"].notna()].copy()
            if d.empty:
                continue
            classes_here = [c for c in order if c in set(d["class"])]
            methods_here = [m for m in colours if m in set(d["Method"])]
            n_seeds = d["seed"].nunique()
            plots.append(hv().BoxWhisker(d, ["class", "Method"], "win_rate").redim.values(
                **{"class": classes_here, "Method": methods_here}).opts(
                box_fill_color="Method", cmap=colours, ylim=(-0.03, 1.03), show_legend=False,
                width=min(900, max(560, 44 * len(classes_here) * len(methods_here) + 100)), height=360,
                xlabel="", ylabel="win rate", hooks=[_hide_inner_labels],
                title=f"Win rate per class by {name}, {split} split ({n_seeds} seed{'s' if n_seeds != 1 else ''})",
                tools=["hover"], fontscale=1.2, xrotation=0, box_line_color="#333"))
        return plots
