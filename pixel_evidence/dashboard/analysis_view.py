"""Below the method rows: do the maps agree, are they faithful to the model, do they survive
the randomization check? One section viewer each, all over the explanation store.

Agreement is plain numpy on the maps already on screen, so it follows every image.
Deletion / insertion curves and the randomization check run the model again (seconds to
minutes), so each waits for its button. All three are computed in a worker thread and drawn
only if the explanation they were asked for is still on screen: a new image, method set or
target clears them, so numbers of another image are never shown.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from functools import partial
from typing import Any, Callable

import panel as pn
import param
from panel.io.state import set_curdoc

from pixel_evidence.checks.results import Curve, SanityResult
from pixel_evidence.dashboard.analysis_charts import (agreement_frame, agreement_html, faithfulness_charts,
                                                      faithfulness_table, sanity_chart, sanity_table)
from pixel_evidence.dashboard.charts import CHARTS_LOCK, ChartPane
from pixel_evidence.dashboard.colours import line_styles
from pixel_evidence.dashboard.formatting import agreement_names
from pixel_evidence.dashboard.host import SHARED
from pixel_evidence.dashboard.markup import plain
from pixel_evidence.dashboard.newest import Newest
from pixel_evidence.dashboard.progress_note import ProgressNote
from pixel_evidence.dashboard.store import ExplanationStore
from pixel_evidence.engine.contract import Engine
from pixel_evidence.engine.explanation import Explanation
from pixel_evidence.metrics import SANITY_PASS_THRESHOLD  # torch-free, like everything the dashboard imports
from pixel_evidence.progress import Cancelled, reporting

log = logging.getLogger("pixel_evidence.dashboard")

TOP_FRACTION = 0.2
AGREEMENT_LABELS = agreement_names(TOP_FRACTION)
STARTS = {"black": "black", "blurred": "blur"}
CURVE_STEPS = 20
MAPS_PER_SANITY = 10  # the classifier head, then each of the encoder's nine stages
NOT_YET = '<div style="color:#555;font-size:14px">Not computed for this image yet.</div>'


def recent_pairs(ex: Explanation) -> list[dict[str, float | str]]:
    """``ex.agreement()``, kept for all sessions (see ``ProcessShared.agreement``)."""
    key = (ex.seed, ex.split, ex.image_id, tuple(ex.methods), ex.target_mode, TOP_FRACTION)
    return SHARED.agreement.get(key, lambda: ex.agreement(TOP_FRACTION))


def _heading(text: str) -> pn.pane.HTML:
    return pn.pane.HTML(f'<h3 style="margin:10px 0 2px 0">{plain(text)}</h3>', sizing_mode="stretch_width")


def _guide(text: str) -> str:
    return f'<div class="pe-explain" style="font-size:14px;color:#333;max-width:1100px">{text}</div>'


class Answer:
    """One kind of answer about the explanation on screen, and where it is drawn.

    ``box`` (long jobs only) is covered by the loading indicator while computing.
    """

    def __init__(self, store: ExplanationStore, kind: str, status: pn.pane.HTML, clear: Callable[[], None],
                 box: pn.Column | None = None):
        self.store, self.kind, self.status, self.clear, self.box = store, kind, status, clear, box
        self.future: Future | None = None  # the newest request: resolves True once drawn
        # a new image drops the request too; nothing is computed once the session has ended
        self._requests = Newest(SHARED.analyse, live=lambda: not store.closed)
        self._lock = self._requests.lock

    def forget(self) -> None:
        """Drop the answer on screen and any request still running."""
        with self._lock:
            self._requests.drop()
            if self.box is not None:
                self.box.loading = False
            self.status.object = NOT_YET if self.box is not None else ""
            self.clear()

    def run(self, compute: Callable[[Explanation], Any], draw: Callable[[Explanation, Any], None]) -> Future:
        """``compute(ex)`` in a worker thread, then ``draw(ex, answer)`` if ``ex`` is still on screen and
        no newer request of this kind was made meanwhile; otherwise the answer is dropped.

        Returns at once (a press never holds a server thread for the minutes a check can take);
        the returned future resolves to True once drawn, False when dropped or failed.
        """
        done: Future = Future()
        ex = self.store.explanation
        doc = pn.state.curdoc  # the session's document: drawing happens on its event loop
        with self._lock:
            number = self._requests.ask()
            self.future = done
            self.status.object = '<div style="font-size:14px;color:#555">Computing…</div>'
            if self.box is not None:
                self.box.loading = True

        def apply(future: Future) -> None:
            drawn = False
            try:
                with self._lock:
                    if not self._requests.is_newest(number) or ex is not self.store.explanation:
                        return  # the user moved on: this answer belongs to another view
                    if self.box is not None:
                        self.box.loading = False
                    try:
                        answer = future.result()
                    except Cancelled:
                        self.status.object = ('<div class="pe-stopped" style="font-size:15px;color:#555">Stopped. '
                                              "Press the button to run it again.</div>")
                        return
                    except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the operator
                        log.exception("%s of %s failed", self.kind, ex.image_id)
                        self.status.object = (f'<div style="color:#B34700;font-size:15px">Could not compute it: '
                                              f"{plain(str(exc))}</div>")
                        return
                    self.status.object = ""
                    draw(ex, answer)
                    drawn = True
            except Exception:  # noqa: BLE001 - a drawing bug must not pass silently
                log.exception("drawing %s of %s failed", self.kind, ex.image_id)
            finally:
                done.set_result(drawn)

        def finish(future: Future) -> None:
            if self.store.closed:  # the session has ended: nothing to draw on
                done.set_result(False)
                return
            # drawn on the session's event loop; without a server (tests, notebooks) right away
            with set_curdoc(doc):
                pn.state.execute(partial(apply, future), schedule=True)

        # skipped when the user moved on (or left) while it waited for a thread
        self._requests.submit(number, compute, ex).add_done_callback(finish)
        return done


class Section(pn.viewable.Viewer):
    """One question about the explanation on screen: its words follow every explanation, and
    each new explanation drops the answer shown for the last one."""

    store = param.ClassSelector(class_=ExplanationStore)
    answer: Answer
    _layout: pn.Column

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("store.explanation", watch=True)
    def _on_explanation(self) -> None:
        self.answer.forget()
        if self.store.explanation is not None:
            self.follow(self.store.explanation)

    def follow(self, ex: Explanation) -> None:
        """Words (and work) for a new explanation."""


class AgreementSection(Section):
    """How alike the methods' maps of this image are, under the state's agreement measure."""

    pairs = param.List(default=None, allow_None=True, doc="ex.agreement() of the explanation on screen")

    def __init__(self, store: ExplanationStore, **params: Any):
        super().__init__(store=store, **params)
        self._note = pn.pane.HTML("", sizing_mode="stretch_width")
        self._status = pn.pane.HTML("", sizing_mode="stretch_width")
        self._matrix = pn.pane.HTML("", sizing_mode="stretch_width", visible=False)
        # the measure is the shared state's (and the URL's): the summary's heatmap follows it too
        self._metric = pn.widgets.RadioButtonGroup.from_param(
            store.state.param.agreement, options={v: k for k, v in AGREEMENT_LABELS.items()}, name="",
            color="primary", variant="outline", width=360)
        store.state.param.watch(lambda _e: pn.state.execute(self._draw, schedule=True), "agreement")
        self.answer = Answer(store, "agreement", self._status, self._clear)
        self._layout = pn.Column(_heading("Do the methods agree on this image?"), self._note, self._metric,
                                 self._status, self._matrix, css_classes=["pe-agreement"],
                                 sizing_mode="stretch_width")
        self._on_explanation()

    def follow(self, ex: Explanation) -> None:
        if len(ex.methods) < 2:
            self._note.object = ('<div style="font-size:14px;color:#555">Choose two or more methods to '
                                 "compare their maps.</div>")
            self._metric.visible = False
            return
        self._note.object = _guide(
            "How alike two maps of this image are, whatever the mask says: <b>Pearson</b> compares the values, "
            "<b>Spearman</b> the order of the pixels, <b>top-20% IoU</b> the overlap of each map's brightest fifth. "
            "1 = the same picture, 0 = unrelated (a grey cell: a constant map, no correlation). Agreeing is not "
            "being right: two methods can agree and both miss the defect.")
        self._metric.visible = True
        # Spearman ranks every map once per pair: a fraction of a second for three methods, seconds
        # for a dozen, so it is computed off the thread that draws the image.
        self.answer.run(recent_pairs, self._show)

    def _clear(self) -> None:
        self.pairs = None
        self._matrix.visible = False

    def _show(self, _ex: Explanation, pairs: list[dict[str, Any]]) -> None:
        self.pairs = pairs
        self._draw()

    def _draw(self) -> None:
        ex, pairs = self.store.explanation, self.pairs
        if ex is None or pairs is None:
            return
        stat = self.store.state.agreement
        order = [r.label for r in ex.methods.values()]
        self._matrix.object = agreement_html(agreement_frame(ex, pairs, stat), order, stat, AGREEMENT_LABELS[stat])
        self._matrix.visible = True


class CheckSection(Section):
    """A check that runs the model again (seconds to minutes), so it waits for its button; its
    answer is a table and charts with a line per method in the method's colour."""

    result = param.Dict(default=None, allow_None=True, doc="The answer for the explanation on screen")
    kind = "check"
    button_label = ""
    progress_unit = ""  # a check that takes minutes shows its progress in these units, with a Cancel button

    def __init__(self, store: ExplanationStore, engine: Engine, n_charts: int, **params: Any):
        super().__init__(store=store, **params)
        self.engine = engine
        self.styles = line_styles(dict(store.catalogue.method_labels))  # the same in every view
        self._button = pn.widgets.Button(label=self.button_label, color="primary", width=320)
        self._button.on_click(lambda _e: self.compute())
        self._guide = pn.pane.HTML("", sizing_mode="stretch_width")
        self._status = pn.pane.HTML("", sizing_mode="stretch_width")
        self._table = pn.pane.HTML("", sizing_mode="stretch_width")
        # Charts are shown and hidden through their FlexBox: Panel 1.9 fails to hide a drawn HoloViews
        # pane itself. A FlexBox also keeps them from upsetting the layout of the image panes: a
        # fixed-size chart placed directly in a Column makes the browser draw those at zero size.
        self._plots = [ChartPane(None, sizing_mode="fixed", linked_axes=False) for _ in range(n_charts)]
        self._charts = pn.FlexBox(*self._plots, sizing_mode="stretch_width", visible=False)
        self._box = pn.Column(self._status, self._table, self._charts, sizing_mode="stretch_width", min_height=60)
        self.answer = Answer(store, self.kind, self._status, self._clear, self._box)
        self.progress = ProgressNote(self.progress_unit, f"pe-{self.kind}-progress") if self.progress_unit else None
        self._answered: Explanation | None = None  # the explanation the answer on screen was computed for

    def compute(self) -> Future:
        """The check of the explanation on screen (the button)."""
        if self.progress is None:
            return self.answer.run(self.ask(), self._show)
        tracker, job = self.progress.start(self.button_label.removeprefix("Run the ")), self.ask()

        def watched(ex: Explanation) -> Any:
            with reporting(tracker):
                return job(ex)

        done = self.answer.run(watched, self._show)
        done.add_done_callback(lambda _f: self.progress.stop() if self.progress.tracker is tracker else None)
        return done

    @param.depends("store.explanation", watch=True)
    def _on_explanation(self) -> None:
        ex = self.store.explanation
        kept = self._still_valid(ex)
        if self.progress is not None:  # its answer would be dropped: stop computing it
            self.progress.cancel()
            self.progress.stop()
        super()._on_explanation()
        if kept:
            self._status.object = ""
            self._show(ex, kept)

    def _still_valid(self, ex: Explanation) -> dict[str, Any] | None:
        """The part of the answer on screen that holds for ``ex``: after a method was removed
        (same image, model and target, methods a subset) the others' answers stand."""
        old, shown = self.result, self._answered
        if old is None or shown is None or ex is None or not ex.methods or not set(ex.methods) <= set(old):
            return None
        same = (shown.seed, shown.split, shown.image_id, shown.target_mode) == (ex.seed, ex.split, ex.image_id,
                                                                                ex.target_mode)
        return {m: old[m] for m in ex.methods} if same else None

    def ask(self) -> Callable[[Explanation], Any]:
        """explanation -> answer, with the settings of the moment the button was pressed."""
        raise NotImplementedError

    def table(self, ex: Explanation, answer: Any) -> str:
        raise NotImplementedError

    def charts(self, ex: Explanation, answer: Any, styles: dict[str, tuple[str, str]]) -> list:
        raise NotImplementedError

    def _clear(self) -> None:
        self.result = None
        self._answered = None
        self._table.object = ""
        self._charts.visible = False

    def _show(self, ex: Explanation, answer: Any) -> None:
        self._answered = ex
        self._table.object = self.table(ex, answer)
        styles = self.styles
        with CHARTS_LOCK:
            for pane, chart in zip(self._plots, self.charts(ex, answer, styles)):
                pane.object = chart
        self._charts.visible = True
        self.result = answer


class FaithfulnessSection(CheckSection):
    """Deletion and insertion curves of the explanation on screen."""

    start = param.Selector(objects=STARTS, default="black", label="Removed pixels become")
    kind = "curves"
    button_label = "Compute deletion & insertion curves"

    def __init__(self, store: ExplanationStore, engine: Engine, **params: Any):
        super().__init__(store, engine, n_charts=2, **params)
        start = pn.widgets.RadioButtonGroup.from_param(self.param.start, color="primary", variant="outline", width=200)
        self._guide.css_classes = ["pe-faith-guide"]
        self._layout = pn.Column(
            _heading("Faithfulness: does the model need the pixels the map points at?"), self._guide,
            pn.Row(self._button, pn.pane.HTML("<b>Removed pixels become</b>", width=170, margin=(12, 5, 0, 20)),
                   start),
            self._box, css_classes=["pe-faithfulness"], sizing_mode="stretch_width")
        self._on_explanation()

    def follow(self, ex: Explanation) -> None:
        self._guide.object = _guide(
            "<b>Deletion</b> replaces each map's most important pixels first: if the map shows what the model uses, "
            f"P({plain(ex.target_class)}) falls fast (low area under the curve). <b>Insertion</b> starts "
            "from the empty image and puts the most important pixels back first: the probability should rise fast "
            "(high area). One batched forward per curve, well under a second per method.")

    @param.depends("start", watch=True)
    def _on_start(self) -> None:
        self.answer.forget()  # curves from the other starting image no longer match the choice

    def ask(self) -> Callable[[Explanation], dict[str, dict[str, Curve]]]:
        start = self.start
        return lambda ex: self.engine.faithfulness(ex, start=start, steps=CURVE_STEPS)

    def table(self, ex: Explanation, curves: dict[str, dict[str, Curve]]) -> str:
        return faithfulness_table(ex, curves)

    def charts(self, ex: Explanation, curves: dict[str, dict[str, Curve]], styles: dict[str, tuple[str, str]]) -> list:
        return faithfulness_charts(ex, curves, styles)


class SanitySection(CheckSection):
    """The cascading randomization check of the explanation on screen."""

    kind = "sanity"
    button_label = "Run the randomization check"
    progress_unit = "maps"

    def __init__(self, store: ExplanationStore, engine: Engine, **params: Any):
        super().__init__(store, engine, n_charts=1, **params)
        self._layout = pn.Column(
            _heading("Sanity check: does the map depend on what the model learned?"), self._guide,
            self._button, self.progress, self._box, css_classes=["pe-sanity"], sizing_mode="stretch_width")
        self._on_explanation()

    def follow(self, ex: Explanation) -> None:
        n = len(ex.methods)
        self._guide.object = _guide(
            "Re-initialises the classifier, then each encoder stage from the top down, and recomputes every map "
            "after each step. A map that stays the same on a random network cannot be showing what the model "
            f"learned. <b>Slow:</b> about {MAPS_PER_SANITY} map computations per method ({n} method"
            f"{'s' if n != 1 else ''}: about {MAPS_PER_SANITY * n}); Integrated Gradients takes several seconds, "
            "perturbation methods much longer.")

    def ask(self) -> Callable[[Explanation], dict[str, SanityResult]]:
        return self.engine.sanity

    def table(self, ex: Explanation, results: dict[str, SanityResult]) -> str:
        return sanity_table(ex, results)

    def charts(self, ex: Explanation, results: dict[str, SanityResult], styles: dict[str, tuple[str, str]]) -> list:
        return [sanity_chart(ex, results, styles, SANITY_PASS_THRESHOLD)]


class AnalysisView(pn.viewable.Viewer):
    """The three sections, shown while the store has an explanation and no error."""

    store = param.ClassSelector(class_=ExplanationStore)

    def __init__(self, store: ExplanationStore, engine: Engine, **params: Any):
        super().__init__(store=store, **params)
        self.agreement = AgreementSection(store)
        self.faithfulness = FaithfulnessSection(store, engine)
        self.sanity = SanitySection(store, engine)
        self._layout = pn.Column(pn.pane.HTML("<hr>", sizing_mode="stretch_width"), self.agreement,
                                 self.faithfulness, self.sanity, sizing_mode="stretch_width",
                                 css_classes=["pe-analysis"])
        self._on_answer()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("store.explanation", "store.error", watch=True)
    def _on_answer(self) -> None:
        self._layout.visible = self.store.explanation is not None and not self.store.error
