"""How much of the defect do the top-K pixels cover? TKO per defect image beside chance."""

from __future__ import annotations

import panel as pn
import param

from pixel_evidence.dashboard.charts import drawing, hv
from pixel_evidence.dashboard.summary.section import Section, chart
from pixel_evidence.results import CHANCE, defect_rows, tko_stats


class TkoSection(Section):
    key = "tko"

    @param.depends("store.results", watch=True)
    @drawing
    def _draw(self) -> None:
        store, res = self.store, self.store.results
        if not (res.available and res.tko["tko"].notna().any()):
            self.show([], [])
            return
        d = defect_rows(res.tko)
        d["Method"] = [store.label(m) for m in d["method"]]
        plots = []
        for split in [s for s in ("test", "train") if s in set(d["split"])]:
            part = d[d["split"] == split]
            n_img = part[part["method"] == CHANCE].shape[0]
            plots.append(hv().BoxWhisker(part, ["Method"], "tko").redim.values(
                Method=[m for m in store.colours if m in set(part["Method"])]).opts(
                box_fill_color="Method", cmap=store.colours, ylim=(-0.03, 1.03), width=560, height=360,
                xrotation=12, show_legend=False, ylabel="Top-K overlap (TKO)", fontscale=1.2, box_line_color="#333",
                title=f"TKO per defect image, {split} split", tools=["hover"],
                xlabel=f"{n_img} defect image × seed pairs"))
        self.show([pn.pane.Markdown("## How much of the defect do the top-K pixels cover?"),
                   *[chart(p) for p in plots]],
                  [("TKO per method (defect images; chance = K/N)", store.with_labels(tko_stats(res.tko)))])
