"""Do the methods agree? The methods × methods heatmap of the state's agreement measure."""

from __future__ import annotations

import pandas as pd
import panel as pn
import param

from pixel_evidence.analyses import AGREEMENT
from pixel_evidence.dashboard.charts import hv
from pixel_evidence.dashboard.colours import agreement_scale
from pixel_evidence.dashboard.formatting import agreement_names, based_on, mean_std
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.section import SPLIT_NOTE, AnalysisSection, cell_labels, chart, text
from pixel_evidence.results import AGREEMENT_STATS, agreement_stats


class AgreementSection(AnalysisSection):
    key = AGREEMENT.name
    question = "Do the methods agree?"
    css_classes = ["pe-agreement-summary"]

    def build(self) -> None:
        # the measure lives in the shared state (and the URL); the per-image view follows it too
        self._stat_select = pn.widgets.RadioButtonGroup.from_param(
            self.store.state.param.agreement, options={n: s for s, n in agreement_names(None).items()}, name="",
            color="primary", variant="outline", width=380)

    def _names(self) -> dict[str, str]:
        """The measures' names; the IoU's top share as the analysis recorded it (not guessed)."""
        fractions = {s.get("fraction") for s in self.store.results.settings.get(self.key, [])}
        return agreement_names(next(iter(fractions)) if len(fractions) == 1 and None not in fractions else None)

    @param.depends("store.state.agreement", watch=True)
    def _on_measure(self) -> None:
        self._draw()

    def draw_rows(self, title: str, split: str, rows: pd.DataFrame) -> None:
        store, stat = self.store, self.store.state.agreement
        stats = agreement_stats(rows)
        names = self._names()
        # symmetric matrix: each pair is stored once, the heatmap shows it on both sides
        pairs = stats[["method_a", "method_b", f"{stat}_mean", f"{stat}_std", "n_images", "n_seeds"]].set_axis(
            ["a", "b", "mean", "std", "n_images", "n_seeds"], axis=1)
        # the diagonal (a method with itself) is grey, not coloured like a measured 0
        own = pd.DataFrame({"a": store.method_order(set(pairs["a"]) | set(pairs["b"]))}).assign(b=lambda d: d["a"])
        long = pd.concat([pairs, pairs.rename(columns={"a": "b", "b": "a"}), own], ignore_index=True)
        long["Method"] = [store.label(m) for m in long["a"]]
        long["compared with"] = [store.label(m) for m in long["b"]]
        long["text"] = ["—" if pd.isna(m) else mean_std(m, s) for m, s in zip(long["mean"], long["std"])]
        order = [store.label(m) for m in store.method_order(set(long["a"]))]
        cmap, clim = agreement_scale(stat)
        heat = hv().HeatMap(long, ["Method", "compared with"], ["mean", "std", "n_images"]).redim.values(
            **{"Method": order, "compared with": order}).opts(
            cmap=cmap, clim=clim, colorbar=True, tools=["hover"], clipping_colors={"NaN": "#e4e4e4"},
            width=140 * len(order) + 220, height=110 * len(order) + 120, fontscale=1.2, invert_yaxis=True,
            xlabel="", ylabel="", clabel=names[stat], title=f"{names[stat]} between maps, mean ± std over images")
        labels = cell_labels(long, ["Method", "compared with"], "text", long["mean"].abs() > 0.6)
        self._stat_select.options = {names[s]: s for s in AGREEMENT_STATS}
        iou = names["top_iou"]
        table = stats.drop(columns=["split"]).assign(method_a=[store.label(m) for m in stats["method_a"]],
                                                     method_b=[store.label(m) for m in stats["method_b"]])
        self.show([
            pn.pane.Markdown(title),
            text(f"How alike are two methods' maps of the same image? <b>Pearson</b>: correlation of the pixel "
                 f"values; <b>Spearman</b>: correlation of their ranks; <b>{plain(iou)}</b>: overlap of "
                 "the two maps' highest pixels (1 = the same pixels). Agreement is not correctness: two "
                 f"methods can agree on the wrong place. Based on {based_on(rows)} ({SPLIT_NOTE})."),
            self._stat_select,
            chart(heat * labels)],
            [(f"Agreement between methods ({split} split)",
              table.rename(columns={"method_a": "method A", "method_b": "method B"}))])
