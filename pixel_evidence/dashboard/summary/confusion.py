"""Classification: the confusion matrix of the state's seed and split, with (balanced) accuracy."""

from __future__ import annotations

import panel as pn
import param

from pixel_evidence.dashboard.charts import drawing, hv
from pixel_evidence.dashboard.summary.section import Section, cell_labels, chart, side_by_side
from pixel_evidence.metrics import balanced_accuracy
from pixel_evidence.results import confusion_matrix

HEAT_WIDTH, WORDS_WIDTH = 460, 260


class ConfusionSection(Section):
    key = "confusion"

    @param.depends("store.results", "store.state.seed", "store.state.split", watch=True)
    @drawing
    def _draw(self) -> None:
        store, res = self.store, self.store.results
        seed, split = int(store.state.seed), store.state.split
        if not (res.available and ((res.tko["seed"] == seed) & (res.tko["split"] == split)).any()):
            self.show([pn.pane.Markdown(f"## Confusion matrix, seed {seed}, {split} split\nNot in the results yet.")],
                      [])
            return
        mat = confusion_matrix(res.tko, seed, split, store.state.catalogue.classes)
        long = mat.stack().rename("count").reset_index()
        long["share"] = long["count"] / long.groupby("true")["count"].transform("sum").where(lambda s: s > 0)
        order = list(mat.index)
        heat = hv().HeatMap(long, ["predicted", "true"], ["count", "share"]).opts(
            cmap="Blues", colorbar=True, tools=["hover"], width=HEAT_WIDTH, height=400, fontscale=1.2,
            invert_yaxis=True, xlabel="predicted class", ylabel="true class", clim=(0, None),
            title=f"Confusion matrix, seed {seed}, {split} split").redim.values(predicted=order, true=order)
        top = max(int(long["count"].max()), 1)
        labels = cell_labels(long, ["predicted", "true"], "count", long["count"] > top * 0.55)
        correct = int(sum(mat.loc[c, c] for c in order if c in mat.columns))
        total = int(mat.values.sum())
        images = res.tko[(res.tko["seed"] == seed) & (res.tko["split"] == split)].drop_duplicates("image_id")
        bacc = balanced_accuracy(images["class"], images["predicted"])
        words = pn.pane.HTML(
            f'<div style="font-size:16px;line-height:1.6">accuracy <b>{correct}/{total}</b> = '
            f'{correct / max(total, 1):.3f}<br>balanced accuracy <b>{bacc:.3f}</b><br><span style="color:#555">Only '
            'correctly classified defect images count towards win rates.</span></div>', width=WORDS_WIDTH)
        self.show([pn.pane.Markdown(f"## Classification (seed {seed}, {split} split)"),
                   *side_by_side([chart(heat * labels), words], [HEAT_WIDTH, WORDS_WIDTH])],
                  [(f"Confusion matrix counts (seed {seed}, {split})", mat.reset_index())])
