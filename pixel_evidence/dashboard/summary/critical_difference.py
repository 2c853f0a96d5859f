"""Which differences between methods are significant? The critical-difference diagram of the
summary's score and split, over the study methods (the evaluation results) or the whole field
(the sweep store's rows, test split).

The comparison (:func:`~pixel_evidence.metrics.significance.compare_over_seeds`, pooled over
(seed, image) blocks) takes seconds for fourteen methods, so it runs on the shared analysis
threads; each answer is kept per (method set, category, score, split) until the results are
read again. The page shows the diagram as SVG; PNG, SVG and CSV downloads sit under it.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
import panel as pn
import param
from panel.io.state import set_curdoc

from pixel_evidence.dashboard.cd_diagram import HOW_TO_READ, cd_figure_size, cd_numbers, cd_png, cd_svg
from pixel_evidence.dashboard.export import table_csv
from pixel_evidence.dashboard.host import SHARED
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.newest import Newest
from pixel_evidence.dashboard.summary.section import SPLIT_NOTE, Section, text
from pixel_evidence.metrics.scores import LOCALISATION_SCORES
from pixel_evidence.metrics.significance import SeedComparison, compare_over_seeds

log = logging.getLogger("pixel_evidence.dashboard")

STUDY, FIELD = "study", "field"  # the method sets: evaluate's results, the sweep store's rows
SET_SOURCES = {STUDY: "evaluation results", FIELD: "sweep store"}  # where each set's rows come from
PX_PER_IN = 96  # the SVG's inches as CSS pixels


@dataclass(frozen=True)
class Rows:
    """What one diagram compares: its cache key, its tidy rows and methods, and its title."""

    key: tuple
    rows: pd.DataFrame
    methods: list[str]
    include_misclassified: bool
    title: str
    stem: str  # download file names start with it


@dataclass(frozen=True)
class Diagram:
    """One computed diagram: the comparison, its SVG (shown) and its numbers (the CSV)."""

    rows: Rows
    result: SeedComparison
    svg: str
    numbers: pd.DataFrame


def compute(rows: Rows, labels: dict[str, str], context: dict[str, str]) -> Diagram:
    """The comparison and its drawing (in a worker thread)."""
    result = compare_over_seeds(rows.rows, score=context["score"], methods=rows.methods,
                                include_misclassified=rows.include_misclassified)
    return Diagram(rows, result, cd_svg(result.pooled, labels, rows.title), cd_numbers(result, labels, **context))


class CriticalDifferenceSection(Section):
    key = "cd"
    css_classes = ["pe-cd"]

    def build(self) -> None:
        self._set = pn.widgets.RadioButtonGroup(options={"Study methods": STUDY, "Whole field": FIELD},
                                                value=STUDY, color="primary", variant="outline", width=380,
                                                css_classes=["pe-cd-set"])
        self._category = pn.widgets.Select(label="Sweep category", options=[], width=260, visible=False)
        for widget in (self._set, self._category):
            widget.param.watch(lambda _e: self._draw(), "value")
        self._downloads = {kind: pn.widgets.FileDownload(callback=partial(self._file, kind), label=label,
                                                         filename="", width=190, css_classes=[f"pe-cd-{kind}"])
                           for kind, label in (("png", "Diagram (PNG)"), ("svg", "Diagram (SVG)"),
                                               ("csv", "Its numbers (CSV)"))}
        self._answers: dict[tuple, Future] = {}
        self._sources: tuple = ()
        self._requests = Newest(SHARED.analyse)
        self.shown: Diagram | None = None
        self.drawn: Future = Future()  # the newest request: resolves True once its diagram (or words) is shown

    def _new_categories(self) -> bool:
        """Offer the sweep store's categories; True when the choice had to move (its watcher draws again)."""
        sweep = self.store.sweep
        categories = sweep.categories if sweep is not None and not sweep.tko.empty else []
        self._category.options = categories
        self._category.visible = self._set.value == FIELD and len(categories) > 1
        if categories and self._category.value not in categories:
            self._category.value = categories[0]
            return True
        return False

    @param.depends("store.results", "store.sweep", "store.state.score", "store.state.split", watch=True)
    def _draw(self) -> None:
        store = self.store
        if self._new_categories():
            return
        if self._sources != (id(store.results), id(store.sweep)):  # read again: every kept answer is stale
            self._sources, self._answers = (id(store.results), id(store.sweep)), {}
        number = self._requests.ask()
        drawn = self.drawn = Future()
        rows = self._rows()
        if isinstance(rows, str):
            self._show(None, rows)
            drawn.set_result(True)
            return
        future = self._answers.get(rows.key)
        if future is None:
            context = {"score": store.state.score, "split": store.state.split, "method_set": self._set.value}
            future = self._answers[rows.key] = SHARED.analyse.submit(compute, rows, store.labels, context)
        if not future.done():
            self._show(None, '<span class="pe-cd-computing">Computing the ranks and tests…</span>')
        doc = pn.state.curdoc

        def apply() -> None:
            try:
                if self._requests.is_newest(number):
                    self._answer(future, rows)
            finally:
                drawn.set_result(self._requests.is_newest(number))

        def finish(_future: Future) -> None:
            context = getattr(doc, "session_context", None)
            if context is not None and context.destroyed:
                drawn.set_result(False)
                return
            with set_curdoc(doc):  # drawn on the session's event loop; without a server right away
                pn.state.execute(apply, schedule=True)

        future.add_done_callback(finish)

    def _answer(self, future: Future, rows: Rows) -> None:
        try:
            diagram = future.result()
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the operator
            log.exception("the critical-difference diagram %s failed", rows.key)
            self._answers.pop(rows.key, None)  # asked again, computed again
            self._show(None, f"Could not compute it: {plain(str(exc))}")
            return
        self._show(diagram, "")

    def _rows(self) -> Rows | str:
        """The rows the chosen set, score and split compare, or one line saying why there are none."""
        store, score, split, chosen = self.store, self.store.state.score, self.store.state.split, self._set.value
        name = LOCALISATION_SCORES[score].short
        if chosen == STUDY:
            res = store.results
            if not res.available:
                return f"No evaluation results in {plain(str(store.directory))}."
            table, category = res.tko, ""
            include_misclassified = (res.summary or {}).get("counted_images") == "all defect images"
        else:
            tables = store.sweep
            if tables is None or tables.tko.empty:
                return (f"No sweep results in {plain(str(store.sweep_directory))} (see “Across categories” below "
                        "for how to make them).")
            category = self._category.value
            table, include_misclassified = tables.category(category), False
        source = SET_SOURCES[chosen]
        if score not in table.columns or not table[score].notna().any():
            return f"No {plain(name)} scores in the {source}: choose another score above."
        rows = table[table["split"] == split]
        if rows.empty:
            held = " and ".join(sorted(table["split"].unique()))
            return f"No {plain(split)}-split rows in the {source}, only {plain(held)} rows ({SPLIT_NOTE})."
        methods = store.method_order(rows["method"].unique())
        if len(methods) < 3:
            return f"A critical-difference diagram needs three methods or more; the {source} have {len(methods)}."
        title = (f"{LOCALISATION_SCORES[score].short}, {split} split, {len(methods)} methods "
                 f"({source}{', ' + category if category else ''})")
        stem = f"pixel-evidence_cd_{chosen}_{score}_{split}" + (f"_{category}" if category else "")
        return Rows((chosen, category, score, split), rows, methods, include_misclassified, title, stem)

    def _show(self, diagram: Diagram | None, words: str) -> None:
        self.shown = diagram
        for kind, button in self._downloads.items():
            button.disabled = diagram is None
            button.filename = f"{diagram.rows.stem}.{kind}" if diagram is not None else ""
        head = [pn.pane.Markdown("## Which differences are significant?"),
                pn.Row(self._set, self._category)]
        if diagram is None:
            self.show([*head, text(words)], [])
            return
        pooled = diagram.result.pooled
        width_in, height_in = cd_figure_size(pooled, self.store.labels)
        element = diagram.svg[diagram.svg.index("<svg"):]  # the pane takes the element, not the file's prologue
        self.show([*head, text(self._reading(diagram, pooled.cd_groups())),
                   pn.pane.SVG(element, width=round(width_in * PX_PER_IN), height=round(height_in * PX_PER_IN),
                               css_classes=["pe-cd-diagram"]),
                   pn.Row(*self._downloads.values())],
                  [(f"Critical-difference diagram: {diagram.rows.title}", diagram.numbers)])

    def _reading(self, diagram: Diagram, bars: list[tuple[str, ...]]) -> str:
        """How to read the diagram, and what it says of the neighbours per seed."""
        pooled, result = diagram.result.pooled, diagram.result
        words = HOW_TO_READ.format(alpha=pooled.alpha)
        pooled_note = (f"Each block is one (seed, image) pair: {pooled.n_blocks} blocks over {len(result.per_seed)} "
                       "seeds, which score the same images, so they are not independent; the counts per seed "
                       "below are the stricter figure.")
        numbers = diagram.numbers
        neighbours = [f"{plain(a)} / {plain(b)} {n} of {numbers['n_seeds'].iloc[0]}"
                      for a, b, n in zip(numbers["label"], numbers["label"].shift(-1), numbers["seeds_separating_next"])
                      if pd.notna(n)]
        separated = "" if bars else " No bar: Nemenyi separates every pair."
        return (f"<b>{plain(words)}</b>{separated} {pooled_note}<br><span style='color:#555'>Seeds on which "
                f"Nemenyi separates each method from the next: {'; '.join(neighbours)}.</span>")

    def _file(self, kind: str) -> Any:
        """The shown diagram as a file, made when its button is pressed."""
        diagram = self.shown
        if diagram is None:
            return None
        if kind == "csv":
            return table_csv(diagram.numbers)
        data = cd_png(diagram.result.pooled, self.store.labels, diagram.rows.title) if kind == "png" \
            else diagram.svg.encode("utf-8")
        return io.BytesIO(data)
