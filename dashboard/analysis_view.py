"""Below the method rows: do the maps agree, are they faithful to the model, do they survive
the randomization check?

Agreement is plain numpy on the maps already on screen, so it follows every image.
Deletion / insertion curves and the randomization check run the model again (seconds to
minutes), so each waits for its button. All three are computed in a worker thread and drawn
only if the explanation they were asked for is still on screen: a new image, method set or
target clears them, so numbers of another image are never shown.
"""

from __future__ import annotations

import html
import logging
import math
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import pandas as pd
import panel as pn
import param
from panel.io.state import set_curdoc

from engine.metrics import SANITY_PASS_THRESHOLD  # torch-free, like everything the dashboard imports

from .figures import RENDER_LOCK, _hv
from .image_view import _COMPUTE, ImageView, fmt
from .summary_view import agreement_names, agreement_scale, method_colours

log = logging.getLogger("pixel_evidence.dashboard")

TOP_FRACTION = 0.2
AGREEMENT_LABELS = agreement_names(TOP_FRACTION)
STARTS = {"black": "black", "blurred": "blur"}
CURVE_STEPS = 20
MAPS_PER_SANITY = 10  # the classifier head, then each of the encoder's nine stages
# A method's lines reuse the colour it has everywhere else; methods that share a colour
# (there are more methods than colour-blind-safe colours) get another dash.
DASHES = ("solid", "dashed", "dotted", "dotdash")
PASS_TEXT = "PASS: the map changes when the weights are random"
FAIL_TEXT = "FAIL: the map barely changes: it shows the image, not what the model learned"
NOT_YET = '<div style="color:#555;font-size:14px">Not computed for this image yet.</div>'


# ----------------------------------------------------------------------------- tables and charts


def agreement_frame(ex: Any, pairs: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    """The full methods × methods matrix in long form (a, b, value): both triangles, diagonal 1."""
    labels = {k: r.label for k, r in ex.methods.items()}
    rows = [(labels[k], labels[k], 1.0) for k in labels]
    for p in pairs:
        v = float(p[metric])
        rows += [(labels[p["a"]], labels[p["b"]], v), (labels[p["b"]], labels[p["a"]], v)]
    return pd.DataFrame(rows, columns=["a", "b", "value"])


def agreement_html(frame: pd.DataFrame, order: list[str], metric: str, metric_label: str) -> str:
    """The methods × methods matrix of ``frame`` (from :func:`agreement_frame`) as an HTML table:
    each cell coloured on the scale the summary's heatmap uses (``agreement_scale``) with its
    value written in it, grey where there is no value (a constant map), and the scale below.

    HTML rather than a HoloViews heatmap: it follows every image, and a table is drawn in
    about a millisecond where a new Bokeh figure takes a tenth of a second."""
    from holoviews.plotting.util import process_cmap

    cmap, (lo, hi) = agreement_scale(metric)
    colours = process_cmap(cmap, ncolors=256)
    values = {(a, b): v for a, b, v in frame[["a", "b", "value"]].itertuples(index=False)}

    def colour(v: float) -> str:
        return colours[round(min(max((v - lo) / (hi - lo), 0.0), 1.0) * (len(colours) - 1))]

    def cell(a: str, b: str) -> str:
        v = values.get((a, b), math.nan)
        style = ("background:#dddddd;color:#555" if math.isnan(v) else
                 f"background:{colour(v)};color:{'white' if abs(v) > 0.6 else '#111'}")
        return (f'<td class="pe-agree-cell" data-a="{html.escape(a)}" data-b="{html.escape(b)}" '
                f'style="{style};width:88px;height:46px;text-align:center;border:2px solid white">'
                f"{fmt(v, 2)}</td>")

    head = "".join(f'<th style="padding:4px;font-weight:600;max-width:88px">{html.escape(b)}</th>' for b in order)
    body = "".join(f'<tr><th style="text-align:right;padding-right:10px;font-weight:600">{html.escape(a)}</th>'
                   + "".join(cell(a, b) for b in order) + "</tr>" for a in order)
    stops = ", ".join(colour(lo + (hi - lo) * i / 10) for i in range(11))
    scale = (f'<div style="display:flex;align-items:center;gap:8px;margin-top:8px;font-size:14px;color:#333">'
             f"{lo:g}<span style=\"display:inline-block;width:220px;height:12px;background:linear-gradient("
             f'to right, {stops})"></span>{hi:g}<span style="color:#555">({html.escape(metric_label)}; '
             "grey: a constant map, no value)</span></div>")
    return (f'<div class="pe-agree-matrix" style="font-size:15px"><div style="font-weight:600;margin:4px 0">'
            f"{html.escape(metric_label)}, this image</div><table style=\"border-collapse:collapse\">"
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>{scale}</div>")


def line_styles(labels: list[str], colours: dict[str, str]) -> dict[str, tuple[str, str]]:
    """label -> (colour, dash) for the methods on screen."""
    used: dict[str, int] = {}
    out = {}
    for label in labels:
        colour = colours.get(label, "#333333")
        out[label] = (colour, DASHES[used.get(colour, 0) % len(DASHES)])
        used[colour] = used.get(colour, 0) + 1
    return out


def faithfulness_charts(ex: Any, curves: dict[str, dict[str, Any]], styles: dict[str, tuple[str, str]]) -> list:
    """One chart per mode, a curve per method, its AUC in the legend."""
    hv = _hv()
    p = hv.Dimension("p", label=f"P({ex.target_class})", range=(0, 1.02))
    charts = []
    for mode, verb in (("deletion", "removed"), ("insertion", "added")):
        x = hv.Dimension("fraction", label=f"fraction of pixels {verb}, most important first", range=(0, 1))
        lines = []
        for key, by_mode in curves.items():
            label = ex.methods[key].label
            c = by_mode[mode]
            colour, dash = styles[label]
            lines.append(hv.Curve((c.fractions, c.probabilities), x, p, label=f"{label} (AUC {c.auc:.3f})").opts(
                color=colour, line_dash=dash, line_width=3, tools=["hover"]))
        better = "lower" if mode == "deletion" else "higher"
        charts.append(hv.Overlay(lines).opts(
            # the legend beside the frame: inside, some curve always runs under it
            title=f"{mode.capitalize()} ({better} AUC = more faithful)", frame_width=380, frame_height=280,
            legend_position="right", fontscale=1.1, toolbar=None, show_grid=True))
    return charts


def sanity_chart(ex: Any, results: dict[str, Any], styles: dict[str, tuple[str, str]], threshold: float):
    hv = _hv()
    depth = hv.Dimension("layer", label="randomized from the top down to")
    rho = hv.Dimension("spearman", label="Spearman with the original map", range=(-1.05, 1.05))
    lines = []
    for key, res in results.items():
        label = ex.methods[key].label
        colour, dash = styles[label]
        lines.append(hv.Curve([(s.layer, s.spearman) for s in res.steps], depth, rho, label=label).opts(
            color=colour, line_dash=dash, line_width=3, tools=["hover"]))
    limits = [hv.HLine(y).opts(color="#777777", line_dash="dashed", line_width=2) for y in (threshold, -threshold)]
    return hv.Overlay(lines + limits).opts(
        title=f"Map similarity as more layers are randomized (pass: |Spearman| < {threshold:g} at the end)",
        frame_width=620, frame_height=260, legend_position="right", xrotation=30, fontscale=1.1, toolbar=None,
        show_grid=True)


def table_html(css: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain, readable table; cells are HTML (callers escape their text)."""
    head = "".join(f'<th style="text-align:left;padding:4px 14px 4px 0">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="padding:4px 14px 4px 0">{c}</td>' for c in row) + "</tr>"
                   for row in rows)
    return (f'<table class="{css}" style="font-size:15px;border-collapse:collapse">'
            f'<thead style="border-bottom:2px solid #333">{head}</thead><tbody>{body}</tbody></table>')


def faithfulness_table(ex: Any, curves: dict[str, dict[str, Any]]) -> str:
    best = {mode: pick([c[mode].auc for c in curves.values()]) for mode, pick in
            (("deletion", min), ("insertion", max))}

    def cell(key: str, mode: str) -> str:
        auc = curves[key][mode].auc
        star = " ★" if len(curves) > 1 and auc == best[mode] else ""
        return f'<span class="pe-auc" data-method="{key}" data-mode="{mode}">{auc:.3f}</span>{star}'

    rows = [[html.escape(ex.methods[k].label), cell(k, "deletion"), cell(k, "insertion")] for k in curves]
    return table_html("pe-faith-table", ["Method", "Deletion AUC (lower = better)",
                                         "Insertion AUC (higher = better)"], rows)


def sanity_table(ex: Any, results: dict[str, Any]) -> str:
    rows = []
    for key, res in results.items():
        colour = "#009E73" if res.passed else "#D55E00"
        verdict = (f'<span class="pe-sanity-verdict" data-method="{key}" data-passed="{str(res.passed).lower()}" '
                   f'style="color:{colour};font-weight:700">{PASS_TEXT if res.passed else FAIL_TEXT}</span>')
        last = res.steps[-1] if res.steps else None
        rows.append([html.escape(ex.methods[key].label),
                     f'<span class="pe-sanity-rho" data-method="{key}">{fmt(res.final_spearman)}</span>',
                     fmt(last.top_iou) if last else "—", verdict])
    return table_html("pe-sanity-table", ["Method", "Spearman after all layers are random", "Top-20% IoU",
                                          "Verdict"], rows)


# ----------------------------------------------------------------------------- the view


@dataclass
class _Job:
    """One kind of answer about the explanation on screen and where it is drawn."""

    status: pn.pane.HTML
    clear: Callable[[], None]
    box: pn.Column | None = None  # covered by the loading indicator while computing (long jobs only)
    gen: int = 0                  # number of the newest request; a new image bumps it too


class AnalysisView(pn.viewable.Viewer):
    """Agreement, faithfulness and sanity check of the explanation the :class:`ImageView` shows."""

    image_view = param.ClassSelector(class_=ImageView)
    start = param.Selector(objects=STARTS, default="black", label="Removed pixels become")
    pairs = param.List(default=None, allow_None=True, doc="ex.agreement() of the explanation on screen")
    curves = param.Dict(default=None, allow_None=True, doc="Faithfulness curves of the explanation on screen")
    sanity = param.Dict(default=None, allow_None=True, doc="Sanity results of the explanation on screen")

    def __init__(self, image_view: ImageView, engine: Any, **params: Any):
        super().__init__(image_view=image_view, **params)
        self.engine = engine
        self.colours = method_colours(dict(image_view.catalogue.method_labels))
        self._lock = threading.RLock()
        self.jobs: dict[str, Future] = {}  # newest request of each kind: resolves True once drawn

        self._agreement_status = pn.pane.HTML("", sizing_mode="stretch_width")
        self._agreement_note = pn.pane.HTML("", sizing_mode="stretch_width")
        self._agreement_matrix = pn.pane.HTML("", sizing_mode="stretch_width", visible=False)
        # the measure is the shared state's (and the URL's), the summary's heatmap follows it too
        state = image_view.state
        self._metric = pn.widgets.RadioButtonGroup(options={v: k for k, v in AGREEMENT_LABELS.items()},
                                                   value=state.agreement, color="primary", variant="outline",
                                                   width=360)
        self._metric.link(state, value="agreement", bidirectional=True)
        state.param.watch(self._on_metric, "agreement")
        self._agreement = pn.Column(
            _heading("Do the methods agree on this image?"), self._agreement_note, self._metric,
            self._agreement_status, self._agreement_matrix,
            css_classes=["pe-agreement"], sizing_mode="stretch_width")

        self._curves_button = pn.widgets.Button(label="Compute deletion & insertion curves", color="primary",
                                                width=320)
        self._curves_button.on_click(lambda _e: self.compute_curves())
        start = pn.widgets.RadioButtonGroup.from_param(self.param.start, color="primary", variant="outline",
                                                       width=200)
        self._curves_guide = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["pe-faith-guide"])
        self._curves_status = pn.pane.HTML("", sizing_mode="stretch_width")
        self._curves_table = pn.pane.HTML("", sizing_mode="stretch_width")
        # Charts are shown and hidden through their FlexBox: Panel 1.9 fails to hide a drawn HoloViews
        # pane itself. A FlexBox also keeps them from upsetting the layout of the image panes: a
        # fixed-size chart placed directly in a Column makes the browser draw those at zero size.
        self._curves_plots = [pn.pane.HoloViews(None, sizing_mode="fixed", linked_axes=False)
                              for _mode in ("deletion", "insertion")]
        self._curves_charts = pn.FlexBox(*self._curves_plots, sizing_mode="stretch_width", visible=False)
        self._curves_box = pn.Column(self._curves_status, self._curves_table, self._curves_charts,
                                     sizing_mode="stretch_width", min_height=60)
        self._faithfulness = pn.Column(
            _heading("Faithfulness: does the model need the pixels the map points at?"), self._curves_guide,
            pn.Row(self._curves_button, pn.pane.HTML("<b>Removed pixels become</b>", width=170, margin=(12, 5, 0, 20)),
                   start),
            self._curves_box, css_classes=["pe-faithfulness"], sizing_mode="stretch_width")

        self._sanity_button = pn.widgets.Button(label="Run the randomization check", color="primary", width=320)
        self._sanity_button.on_click(lambda _e: self.compute_sanity())
        self._sanity_cost = pn.pane.HTML("", sizing_mode="stretch_width")
        self._sanity_status = pn.pane.HTML("", sizing_mode="stretch_width")
        self._sanity_table = pn.pane.HTML("", sizing_mode="stretch_width")
        self._sanity_plot = pn.pane.HoloViews(None, sizing_mode="fixed", linked_axes=False)
        self._sanity_chart = pn.FlexBox(self._sanity_plot, sizing_mode="stretch_width", visible=False)
        self._sanity_box = pn.Column(self._sanity_status, self._sanity_table, self._sanity_chart,
                                     sizing_mode="stretch_width", min_height=60)
        self._sanity = pn.Column(
            _heading("Sanity check: does the map depend on what the model learned?"), self._sanity_cost,
            self._sanity_button, self._sanity_box, css_classes=["pe-sanity"], sizing_mode="stretch_width")

        self._jobs = {
            "agreement": _Job(self._agreement_status, self._clear_agreement),
            "curves": _Job(self._curves_status, self._clear_curves, self._curves_box),
            "sanity": _Job(self._sanity_status, self._clear_sanity, self._sanity_box),
        }
        self._layout = pn.Column(
            pn.pane.HTML("<hr>", sizing_mode="stretch_width"), self._agreement, self._faithfulness, self._sanity,
            sizing_mode="stretch_width", css_classes=["pe-analysis"])
        self._on_explanation()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @property
    def explanation(self) -> Any:
        return self.image_view.explanation

    # ---------------------------------------------------------------- following the image

    @param.depends("image_view.explanation", "image_view.error", watch=True)
    def _on_explanation(self) -> None:
        ex = self.explanation
        self._layout.visible = ex is not None and not self.image_view.error
        with self._lock:
            for kind in self._jobs:
                self._forget(kind)
        if ex is None:
            return
        self._curves_guide.object = (
            f'<div style="font-size:14px;color:#333;max-width:1100px"><b>Deletion</b> replaces each map\'s most '
            f'important pixels first: if the map shows what the model uses, P({html.escape(ex.target_class)}) '
            "falls fast (low area under the curve). <b>Insertion</b> starts from the empty image and puts the most "
            "important pixels back first: the probability should rise fast (high area). One batched forward per "
            "curve, well under a second per method.</div>")
        n = len(ex.methods)
        self._sanity_cost.object = (
            '<div style="font-size:14px;color:#333;max-width:1100px">Re-initialises the classifier, then each '
            "encoder stage from the top down, and recomputes every map after each step. A map that stays the same "
            "on a random network cannot be showing what the model learned. <b>Slow:</b> about "
            f"{MAPS_PER_SANITY} map computations per method ({n} method{'s' if n != 1 else ''}: about "
            f"{MAPS_PER_SANITY * n}); Integrated Gradients takes several seconds, perturbation methods much longer."
            "</div>")
        if n < 2:
            self._agreement_note.object = ('<div style="font-size:14px;color:#555">Choose two or more methods to '
                                           "compare their maps.</div>")
            self._metric.visible = False
            return
        self._agreement_note.object = (
            '<div style="font-size:14px;color:#333;max-width:1100px">How alike two maps of this image are, '
            "whatever the mask says: <b>Pearson</b> compares the values, <b>Spearman</b> the order of the pixels, "
            "<b>top-20% IoU</b> the overlap of each map's brightest fifth. 1 = the same picture, 0 = unrelated "
            "(a grey cell: a constant map, no correlation). Agreeing is not being right: two methods can agree "
            "and both miss the defect.</div>")
        self._metric.visible = True
        # Spearman ranks every map once per pair: a fraction of a second for three methods, seconds
        # for a dozen, so it is computed off the thread that draws the image.
        self._run("agreement", lambda e: e.agreement(TOP_FRACTION), self._draw_pairs)

    @param.depends("start", watch=True)
    def _on_start(self) -> None:
        with self._lock:  # curves from the other starting image no longer match the choice
            self._forget("curves")

    def _forget(self, kind: str) -> None:
        """Drop ``kind``'s answer and any request of it still running (call with the lock held)."""
        job = self._jobs[kind]
        job.gen += 1
        if job.box is not None:
            job.box.loading = False
        job.status.object = NOT_YET if job.box is not None else ""
        job.clear()

    def _clear_agreement(self) -> None:
        self.pairs = None
        self._agreement_matrix.visible = False

    def _clear_curves(self) -> None:
        self.curves = None
        self._curves_table.object = ""
        self._curves_charts.visible = False

    def _clear_sanity(self) -> None:
        self.sanity = None
        self._sanity_table.object = ""
        self._sanity_chart.visible = False

    # ---------------------------------------------------------------- computing

    def compute_curves(self) -> Future:
        """Deletion and insertion curves of the explanation on screen (the button)."""
        start = self.start
        return self._run("curves", lambda ex: self.engine.faithfulness(ex, start=start, steps=CURVE_STEPS),
                         self._draw_curves)

    def compute_sanity(self) -> Future:
        """The cascading randomization check of the explanation on screen (the button)."""
        return self._run("sanity", self.engine.sanity, self._draw_sanity)

    def _run(self, kind: str, compute: Callable[[Any], Any], draw: Callable[[Any, Any], None]) -> Future:
        """``compute(ex)`` in a worker thread, then ``draw(ex, answer)`` if ``ex`` is still on screen and
        no newer request of this kind was made meanwhile; otherwise the answer is dropped.

        Returns at once (a press never holds a server thread for the minutes a check can take);
        the returned future resolves to True once drawn, False when dropped or failed.
        """
        done: Future = Future()
        ex = self.explanation
        job = self._jobs[kind]
        doc = pn.state.curdoc  # the session's document: drawing happens on its event loop
        with self._lock:
            job.gen += 1
            gen = job.gen
            self.jobs[kind] = done
            job.status.object = '<div style="font-size:14px;color:#555">Computing…</div>'
            if job.box is not None:
                job.box.loading = True

        def apply(future: Future) -> None:
            drawn = False
            try:
                with self._lock:
                    if gen != job.gen or ex is not self.explanation:
                        return  # the user moved on: this answer belongs to another view
                    if job.box is not None:
                        job.box.loading = False
                    try:
                        answer = future.result()
                    except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the operator
                        log.exception("%s of %s failed", kind, ex.image_id)
                        job.status.object = (f'<div style="color:#B34700;font-size:15px">Could not compute it: '
                                             f"{html.escape(str(exc))}</div>")
                        return
                    job.status.object = ""
                    draw(ex, answer)
                    drawn = True
            except Exception:  # noqa: BLE001 - a drawing bug must not pass silently
                log.exception("drawing %s of %s failed", kind, ex.image_id)
            finally:
                done.set_result(drawn)

        def finish(future: Future) -> None:
            # HoloViews is not thread-safe (building a plot's options while the session renders
            # another one corrupts the image panes), so the answer is drawn on the session's
            # event loop; without a server (tests, notebooks) it is drawn right away.
            with set_curdoc(doc):
                pn.state.execute(partial(apply, future), schedule=True)

        _COMPUTE.submit(compute, ex).add_done_callback(finish)
        return done

    # ---------------------------------------------------------------- drawing (lock held)

    def _styles(self, ex: Any) -> dict[str, tuple[str, str]]:
        return line_styles([r.label for r in ex.methods.values()], self.colours)

    def _on_metric(self, _event: Any) -> None:
        pn.state.execute(self._draw_agreement, schedule=True)  # on the event loop: see _run

    def _draw_agreement(self) -> None:
        with self._lock:
            ex, pairs = self.explanation, self.pairs
            if ex is None or pairs is None:
                return
            stat = self.image_view.state.agreement
            order = [r.label for r in ex.methods.values()]
            self._agreement_matrix.object = agreement_html(agreement_frame(ex, pairs, stat), order, stat,
                                                           AGREEMENT_LABELS[stat])
            self._agreement_matrix.visible = True

    def _draw_pairs(self, ex: Any, pairs: list[dict[str, Any]]) -> None:
        self.pairs = pairs
        self._draw_agreement()

    def _draw_curves(self, ex: Any, curves: dict[str, dict[str, Any]]) -> None:
        self._curves_table.object = faithfulness_table(ex, curves)
        with RENDER_LOCK:
            for pane, chart in zip(self._curves_plots, faithfulness_charts(ex, curves, self._styles(ex))):
                pane.object = chart
        self._curves_charts.visible = True
        self.curves = curves

    def _draw_sanity(self, ex: Any, results: dict[str, Any]) -> None:
        self._sanity_table.object = sanity_table(ex, results)
        with RENDER_LOCK:
            self._sanity_plot.object = sanity_chart(ex, results, self._styles(ex), SANITY_PASS_THRESHOLD)
        self._sanity_chart.visible = True
        self.sanity = results


def _heading(text: str) -> pn.pane.HTML:
    return pn.pane.HTML(f'<h3 style="margin:10px 0 2px 0">{html.escape(text)}</h3>', sizing_mode="stretch_width")
