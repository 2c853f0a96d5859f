"""Are the maps faithful to the model? Deletion / insertion AUC per method, mean ± std."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from pixel_evidence.analyses import FAITHFULNESS
from pixel_evidence.dashboard.charts import hv
from pixel_evidence.dashboard.formatting import based_on
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.section import AnalysisSection, chart, side_by_side, text
from pixel_evidence.results import faithfulness_stats

MODES = (("deletion_auc", "Deletion", "lower = more faithful"),
         ("insertion_auc", "Insertion", "higher = more faithful"))


def _whiskers_on_top(plot: Any, _element: Any) -> None:
    """Bokeh draws error whiskers under the glyphs by default: the lower half would hide behind the bars."""
    plot.handles["glyph"].level = "annotation"


def _bars_width(n_methods: int) -> int:
    return max(360, 110 * n_methods + 120)


class FaithfulnessSection(AnalysisSection):
    key = FAITHFULNESS.name
    question = "Are the maps faithful to the model?"
    css_classes = ["pe-faithfulness-summary"]

    def _bars(self, stats: pd.DataFrame, value: str, title: str, ylabel: str) -> Any:
        """Bars of ``<value>_mean`` per method with ± ``<value>_std`` error bars, in method colours."""
        store = self.store
        d = stats.assign(Method=[store.label(m) for m in stats["method"]],
                         mean=stats[f"{value}_mean"], std=stats[f"{value}_std"].fillna(0.0))
        order = [store.label(m) for m in store.method_order(d["method"])]
        bars = hv().Bars(d, "Method", ["mean", "std", "n_images"]).redim.values(Method=order).opts(
            color=hv().dim("Method").categorize(store.colours, default="#888"), line_color="#333", tools=["hover"],
            ylim=(0, 1.05), width=_bars_width(len(order)), height=340, fontscale=1.2, title=title,
            ylabel=ylabel, xlabel="", show_grid=True)
        errors = hv().ErrorBars(d, "Method", ["mean", "std"]).opts(line_width=2, color="#111", hooks=[_whiskers_on_top])
        return bars * errors

    def draw_rows(self, title: str, split: str, rows: pd.DataFrame) -> None:
        stats = faithfulness_stats(rows)
        blocks = []
        for start in sorted(stats["start"].unique()):
            part = stats[stats["start"] == start]
            here = rows[rows["start"] == start]
            steps = sorted(int(s) for s in here["steps"].dropna().unique())
            blocks.append(text(
                f"Start image: <b>{plain(str(start))}</b> (removed pixels become {plain(str(start))}; "
                f"insertion starts from it){', ' + '/'.join(map(str, steps)) + ' steps per curve' if steps else ''}. "
                f"Based on {based_on(here)}."))
            charts = [chart(self._bars(part, value, f"{kind} AUC ({guide})", f"{kind.lower()} AUC"))
                      for value, kind, guide in MODES]
            blocks.extend(side_by_side(charts, [_bars_width(part["method"].nunique())] * len(charts)))
        self.show([
            pn.pane.Markdown(title),
            text("<b>Deletion</b> removes the map's most important pixels first and follows the model's "
                 "probability for the explained class; <b>insertion</b> adds them back to an empty start "
                 "image. Area under each curve, mean ± std over images: <b>lower deletion AUC and higher "
                 "insertion AUC = the map is more faithful to the model</b> (this does not use the defect "
                 "masks)."),
            *blocks],
            [(f"Deletion / insertion AUC per method ({split} split)",
              self.store.with_labels(stats.drop(columns=["split"]), at=1))])
