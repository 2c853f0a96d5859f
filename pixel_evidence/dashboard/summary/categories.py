"""Across categories: win rates per method from the sweep's Parquet store, with each method's cost.

The store (``pixel-evidence sweep``, default ``<models>/results/sweep``) may hold many
categories; one table shows the chosen category, one every category side by side. Each
method's cost (seconds per image, the benchmark's methods section) stands beside its win
rate, so a reader can weigh a win against its price (IG's as the store computed it: refined
to a tolerance, or the fixed rule).
"""

from __future__ import annotations

import pandas as pd
import panel as pn
import param

from pixel_evidence.dashboard.charts import drawing
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.summary.section import Section, text
from pixel_evidence.results import category_win_rates
from pixel_evidence.sweep.costs import method_costs

COST = "cost (s/image)"


def mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def cost_cell(seconds: dict[str, float], method: str) -> float | str:
    """The method's seconds per image; "–" for an imported method: made elsewhere, not timed."""
    return round(seconds[method], 3) if method in seconds else "–"


COLUMN_PX, MAX_PX = 150, 1000  # a table wider than MAX_PX (many categories) scrolls sideways


def _table(df: pd.DataFrame, css_class: str) -> pn.Column:
    width = COLUMN_PX * (len(df.columns) + 1)  # the method names take two columns' room
    # headers right, over their right-aligned numbers
    pane = pn.pane.DataFrame(df, index=False, width=width, css_classes=[css_class], justify="right")
    return pn.Column(pane, width=min(width + 20, MAX_PX), scroll=width + 20 > MAX_PX)


class CategoriesSection(Section):
    key = "categories"
    css_classes = ["pe-categories"]

    def build(self) -> None:
        self._category = pn.widgets.Select(label="Category", options=[], width=260, css_classes=["pe-category-select"])
        self._category.param.watch(lambda _e: self._draw(), "value")

    @param.depends("store.sweep", "store.state.split", watch=True)
    @drawing
    def _draw(self) -> None:
        store, split = self.store, self.store.state.split
        tables = store.sweep
        heading = pn.pane.Markdown(f"## Across categories ({split} split, sweep store)")
        if tables is None or tables.tko.empty:
            self.show([heading, text(
                f"No sweep results in {plain(str(store.sweep_directory))}. Make them with "
                f"<code>pixel-evidence sweep --data CATEGORY... --models MODELS... --out "
                f"{plain(str(store.sweep_directory))}</code> (README, “Scale-out”), then press “Reload "
                "results”.")], [])
            return
        rates = category_win_rates(tables, split=split)
        categories = tables.categories
        self._category.options = categories
        if self._category.value not in categories:
            self._category.value = categories[0]  # draws again through the watcher
            return
        costs = method_costs(ig_refined=tables.ig_refined)
        rates["cell"] = [mean_std(m, s) for m, s in zip(rates["mean"], rates["std"])]
        one = rates[rates["category"] == self._category.value].sort_values("mean", ascending=False)
        chosen = pd.DataFrame({"Method": [store.label(m) for m in one["method"]],
                               "win rate (mean ± std over seeds)": one["cell"].to_list(),
                               "seeds": one["n_seeds"].to_list(),
                               COST: [cost_cell(costs.seconds, m) for m in one["method"]]})
        wide = rates.pivot(index="method", columns="category", values="cell")
        order = rates.groupby("method")["mean"].mean().sort_values(ascending=False).index
        wide = wide.reindex(order)
        across = pd.DataFrame({"Method": [store.label(m) for m in wide.index],
                               **{c: wide[c].fillna("–").to_list() for c in wide.columns},
                               COST: [cost_cell(costs.seconds, m) for m in wide.index]})
        notes = [plain(p) for p in tables.problems]
        if not tables.failures.empty:
            notes.append(f"{len(tables.failures)} image(s) could not be read in the sweep and have no rows "
                         "(see the failures in the sweep's output).")
        self.show([heading, text(
            "Win rate of each method on each category (overall, correctly classified defect images), mean ± std "
            f"over seeds, best first. Cost: seconds per image of the method alone, from {plain(costs.source)}."
            + ("<br>" + "<br>".join(notes) if notes else "")),
            self._category, _table(chosen, "pe-category-table"),
            pn.pane.Markdown("### Every category"), _table(across, "pe-across-table")],
            [(f"Win rates in {self._category.value}, {split} split", chosen),
             (f"Win rates per category, {split} split", across)])
