"""The per-image view: image, mask, reconstruction, prediction; one row per method; ranking.

The view asks the engine for an ``Explanation`` (numpy arrays and scores) and draws it;
it never touches a model. Computing runs in a worker thread: when the answer is not back
within a moment (i.e. not cached), the view shows a loading indicator while it waits, and
an answer that arrives after the user moved on is dropped.
"""

from __future__ import annotations

import html
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from . import figures
from .catalogue import Catalogue
from .state import TARGET_LABELS, DashboardState

log = logging.getLogger("pixel_evidence.dashboard")

# Shared by all sessions: threads that wait for the engine (which serialises model calls).
_COMPUTE = ThreadPoolExecutor(max_workers=8, thread_name_prefix="explain")
SLOW_AFTER = 0.15  # seconds before the loading indicator appears
PANE_SIZE = 240


@dataclass(frozen=True)
class Request:
    seed: int
    split: str
    image_id: str
    methods: tuple[str, ...]
    target: str


# ----------------------------------------------------------------------------- formatting


def fmt(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_lift(x: float) -> str:
    if x is None or math.isnan(x):
        return "—"
    return f"×{x:.1f}" if x < 100 else f"×{x:.0f}"


def rank_label(rank: float, all_ranks: list[float]) -> str:
    """``"1"``, ``"1.5 (tie)"``, ``"2 (3-way tie)"``; ``"—"`` for an unrankable image."""
    if rank is None or math.isnan(rank):
        return "—"
    shared = sum(1 for r in all_ranks if r == rank)
    text = f"{rank:g}"
    if shared == 2:
        return f"{text} (tie)"
    if shared > 2:
        return f"{text} ({shared}-way tie)"
    return text


def ranking_frame(ex: Any) -> pd.DataFrame:
    """One row per method of an explanation, best first: the numbers of the ranking table."""
    ranks = [r.rank for r in ex.methods.values()]
    rows = []
    for key, r in ex.methods.items():
        rows.append({"Method": r.label, "method": key, "TKO": r.tko, "Lift": r.lift, "IoU": r.iou,
                     "Chance": r.chance, "Rank": r.rank, "Rank shown": rank_label(r.rank, ranks),
                     "Win share": r.win_share})
    df = pd.DataFrame(rows, columns=["Method", "method", "TKO", "Lift", "IoU", "Chance", "Rank", "Rank shown",
                                     "Win share"])
    if ex.rankable:
        df = df.sort_values(["Rank", "Method"], kind="stable")
    return df.reset_index(drop=True)


def result_label(win_share: float) -> str:
    if win_share is None or math.isnan(win_share):
        return "not ranked"
    if win_share == 1:
        return "winner"
    if win_share > 0:
        return f"shared win (1/{round(1 / win_share)})"
    return ""


def _highlight_winner(row: pd.Series) -> list[str]:
    win = str(row.get("Result", "")).startswith(("winner", "shared win"))
    style = f"background-color: {figures.WIN_COLOUR}; color: white; font-weight: bold" if win else ""
    return [style] * len(row)


def _badge(text: str, colour: str, fg: str = "white") -> str:
    return (f'<span style="background:{colour};color:{fg};border-radius:6px;padding:2px 10px;'
            f'font-weight:700;font-size:15px;white-space:nowrap">{html.escape(text)}</span>')


def verdict_html(ex: Any) -> str:
    """The big line above the ranking table: who wins, a shared win, or no ranking at all."""
    if not ex.rankable:
        return ('<div class="pe-verdict pe-nowin" style="font-size:22px;font-weight:700;color:#444">'
                'No defect pixels on this image (K = 0): nothing to rank, no winner.</div>'
                '<div style="font-size:14px;color:#555">A good (defect-free) image has an empty mask, so '
                'TKO, lift and IoU are undefined. Pick a defect class to compare the methods.</div>')
    winners = [ex.methods[k] for k in ex.winners]
    names = " & ".join(w.label for w in winners)
    best = winners[0].tko if winners else math.nan
    if len(winners) == 1:
        head = f'★ {html.escape(names)} wins'
        sub = f"highest Top-K overlap: {fmt(best)} (chance {fmt(winners[0].chance)})"
    else:
        head = f'★ Tie for first: {html.escape(names)}'
        sub = f"each gets 1/{len(winners)} of the win; Top-K overlap {fmt(best)}"
    if best == 0:
        sub += " · every method missed the defect entirely"
    if not ex.correct:
        sub += " · the image is misclassified, so it does not count towards the win rates"
    return (f'<div class="pe-verdict" style="font-size:26px;font-weight:800;color:{figures.WIN_COLOUR}">{head}</div>'
            f'<div style="font-size:15px;color:#333">{sub}</div>')


def prediction_html(ex: Any, catalogue: Catalogue) -> str:
    p = ex.probabilities
    pred = ex.predicted_class
    prob = float(p[int(np.argmax(p))])
    true_prob = float(p[list(ex.classes).index(ex.true_class)]) if ex.true_class in ex.classes else math.nan
    if ex.correct:
        flag = (f'<div style="color:{figures.GOOD_COLOUR};font-size:20px;font-weight:800">✔ correct</div>')
    else:
        flag = (f'<div style="background:{figures.BAD_COLOUR};color:white;font-size:20px;font-weight:800;'
                'padding:2px 8px;border-radius:6px;display:inline-block">✘ MISCLASSIFIED</div>')
    k_line = (f"Defect: K = {ex.k:,} of N = {ex.n:,} pixels ({100 * ex.k / ex.n:.2f}%)" if ex.k
              else "Defect: none (K = 0)")
    chance = f"chance TKO = K/N = {ex.k / ex.n:.4f}" if ex.k else "no chance level: nothing to find"
    target = (f"Maps explain the {TARGET_LABELS[ex.target_mode]}: <b>{html.escape(ex.target_class)}</b>")
    return f"""
<div class="pe-prediction" style="font-size:15px;line-height:1.45">
  <div style="color:#555">Predicted</div>
  <div style="font-size:28px;font-weight:800" class="pe-pred-class">{html.escape(pred)}
     <span style="font-size:20px;font-weight:600">{100 * prob:.0f}%</span></div>
  <div style="color:#555;margin-top:4px">True class</div>
  <div style="font-size:24px;font-weight:700" class="pe-true-class">{html.escape(ex.true_class)}
     <span style="font-size:16px;font-weight:500;color:#555">(p = {100 * true_prob:.0f}%)</span></div>
  {flag}
  <div style="margin-top:8px">{k_line}<br>{chance}<br>{target}</div>
</div>"""


def method_card_html(ex: Any, key: str, catalogue: Catalogue, pic: figures.MethodPicture) -> str:
    r = ex.methods[key]
    ranks = [m.rank for m in ex.methods.values()]
    if not ex.rankable:
        badge = _badge("not ranked (K = 0)", "#777")
    elif r.win_share == 1:
        badge = _badge("★ WINNER", figures.WIN_COLOUR)
    elif r.win_share > 0:
        badge = _badge(f"★ shared win (1/{round(1 / r.win_share)})", figures.WIN_COLOUR)
    else:
        badge = _badge(f"rank {rank_label(r.rank, ranks)}", "#e6e6e6", "#222")
    cost = catalogue.cost_notes.get(key, "")
    params = catalogue.method_params.get(key, {})
    extra = ""
    if "relative_delta" in r.extras:
        rd = r.extras["relative_delta"]
        steps = params.get("n_steps")
        quality = ("good approximation" if rd < 0.05 else "rough: more steps would change the map" if rd < 0.25
                   else "poor: the map is far from converged")
        extra = (f'<div class="pe-ig-delta" style="margin-top:6px">IG convergence gap: <b>{100 * rd:.1f}%</b> '
                 f'of the score change unexplained ({quality}; {steps} steps)</div>')
    if ex.rankable:
        p = pic.pixels
        tie = ""
        if p.n_tied:
            tie = (f'<div style="color:#555">{p.n_tied:,} pixels tie at the cut-off and share '
                   f'{p.k - p.n_above:,} slots (each counts {p.tie_share:.3f})</div>')
        numbers = f"""
  <div style="display:flex;align-items:baseline;gap:10px">
    <span style="font-size:15px;color:#555">TKO</span>
    <span class="pe-tko" data-method="{key}" style="font-size:46px;font-weight:800;line-height:1">{fmt(r.tko)}</span>
  </div>
  <div style="font-size:17px"><b class="pe-lift">{fmt_lift(r.lift)}</b> over chance
      (<span class="pe-chance">{fmt(r.chance, 4)}</span>) · IoU <b class="pe-iou">{fmt(r.iou)}</b></div>
  <div style="font-size:14px;color:#333">{p.hits:,} hits · {p.misses:,} misses · {p.false_alarms:,} false alarms</div>
  {tie}"""
    else:
        numbers = ('<div style="font-size:15px;color:#555">TKO <span class="pe-tko" data-method="'
                   f'{key}" style="font-size:30px;font-weight:700">—</span><br>no defect pixels to find</div>')
    return f"""
<div class="pe-method-card" data-method="{key}" style="font-size:14px;line-height:1.35">
  <div style="display:flex;align-items:center;gap:10px;margin-bottom:4px">
    <span style="font-size:22px;font-weight:800">{html.escape(r.label)}</span></div>
  <div style="margin-bottom:4px">{badge}</div>
  {numbers}
  <div style="color:#555;margin-top:6px">Cost: {html.escape(cost)}</div>
  {extra}
</div>"""


def slow_warning_html(catalogue: Catalogue, methods: list[str] | tuple[str, ...]) -> str:
    """The note above the maps when slow methods are chosen ("" when none is): why the wait."""
    slow = [m for m in methods if m in catalogue.slow_methods]
    if not slow:
        return ""
    names = ", ".join(html.escape(catalogue.method_labels[m]) for m in slow)
    costs = "".join(f"<li><b>{html.escape(catalogue.method_labels[m])}</b>: {html.escape(catalogue.cost_notes[m])}</li>"
                    for m in slow)
    what = ("These are perturbation methods that need" if len(slow) > 1
            else "This is a perturbation method that needs")
    return (f'<div class="pe-slow-text" style="font-size:15px"><b>Slow method{"s" if len(slow) > 1 else ""}: '
            f"{names}.</b> {what} hundreds of forward passes, so a new image takes seconds on a CPU (once "
            f'computed, an image is cached).<ul style="margin:4px 0 0 0">{costs}</ul></div>')


def legend_html() -> str:
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;gap:5px;margin-right:14px">'
        f'<span style="width:16px;height:16px;background:{c};border:1px solid #333;display:inline-block"></span>'
        f'<b>{html.escape(name)}</b></span>' for name, c, _ in figures.PIXEL_LEGEND)
    return f"""
<div class="pe-legend" style="font-size:14px;line-height:1.5">
  <div>Top-K pixels (K = number of defect pixels): {items}</div>
  <div style="color:#444">Heatmaps: each map is divided by its own 99.5th percentile and clipped to 0–1
  <i>for display only</i> (bright = most important); TKO, lift and IoU use the raw maps. Ties at the cut-off
  are never broken by pixel order: tied pixels share the remaining top-K slots and count fractionally.
  White outline = ground-truth defect. Drag to pan, scroll to zoom: all images follow (reset: toolbar of the
  first image).</div>
</div>"""


# ----------------------------------------------------------------------------- the view


class ImageView(pn.viewable.Viewer):
    """Per-image panel bound to a :class:`DashboardState` and an engine."""

    state = param.ClassSelector(class_=DashboardState)
    explanation = param.Parameter(default=None, doc="The Explanation on screen (None while none)")
    error = param.String(default="", doc="Why the current image could not be shown")
    computing = param.Boolean(default=False)

    def __init__(self, state: DashboardState, engine: Any, *, host: Any = None, **params: Any):
        super().__init__(state=state, **params)
        self.engine = engine
        self.host = host
        self.catalogue = state.catalogue
        self.pictures: figures.Pictures | None = None
        self._gen = 0        # number of the newest request
        self._finished = 0   # number of the newest request that has finished (shown or failed)
        self._lock = threading.RLock()

        sz = PANE_SIZE
        self._title = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["pe-title"])
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        # outside the layout that gets the loading overlay: it explains the wait while it lasts
        self._slow = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                                   css_classes=["pe-slow-warning"])
        blank_rgb = np.zeros((8, 8, 3), np.uint8)
        blank = np.zeros((8, 8), np.float32)
        self._img_slot = figures.Slot("rgb", (blank_rgb, "Image"), sz, toolbar=True)
        self._mask_slot = figures.Slot("rgb", (blank_rgb, "Ground-truth defect"), sz)
        self._recon_slot = figures.Slot("recon", (blank, np.zeros((8, 8), bool), "Decoder reconstruction"), sz)
        self._img = pn.pane.HoloViews(self._img_slot.dmap, linked_axes=True, sizing_mode="fixed")
        self._mask = pn.pane.HoloViews(self._mask_slot.dmap, linked_axes=True, sizing_mode="fixed")
        self._recon = pn.pane.HoloViews(self._recon_slot.dmap, linked_axes=True, sizing_mode="fixed")
        self._pred = pn.pane.HTML("", width=290, margin=(10, 10))
        self._verdict = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        self._table = pn.widgets.Tabulator(
            pd.DataFrame(columns=["Method", "TKO", "Lift", "IoU", "Chance", "Rank", "Result"]), disabled=True,
            show_index=False, sizing_mode="stretch_width", layout="fit_columns", height=150,
            stylesheets=[":host .tabulator {font-size: 16px;}"])
        self._table.style.apply(_highlight_winner, axis=1)
        self._legend = pn.pane.HTML(legend_html(), sizing_mode="stretch_width")
        self._rows: dict[str, tuple[figures.Slot, figures.Slot, pn.Row, pn.pane.HTML]] = {}
        self._methods_col = pn.Column(sizing_mode="stretch_width")
        self._content = pn.Column(
            pn.FlexBox(self._img, self._mask, self._recon, self._pred, sizing_mode="stretch_width"),
            pn.Row(pn.Column(self._verdict, self._table, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            self._legend,
            self._methods_col,
            sizing_mode="stretch_width")
        self._layout = pn.Column(self._title, self._alert, self._content, sizing_mode="stretch_width",
                                 min_height=400)
        self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._slow, self._layout, sizing_mode="stretch_width")

    # ---------------------------------------------------------------- computing

    def request(self) -> Request:
        s = self.state
        return Request(int(s.seed), s.split, s.image_id, tuple(s.methods), s.target)

    def _compute(self, req: Request) -> tuple[Any, figures.Pictures]:
        ex = self.engine.explain(req.seed, req.split, req.image_id, req.methods, req.target)
        return ex, figures.make_pictures(ex)

    @param.depends("state.seed", "state.image_id", "state.methods", "state.target", watch=True)
    def refresh(self) -> None:
        """Show the state's image: compute (cached by the engine) and draw; stale answers are dropped."""
        req = self.request()
        warning = slow_warning_html(self.catalogue, req.methods)
        self._slow.param.update(object=warning, visible=bool(warning))
        with self._lock:
            self._gen += 1
            gen = self._gen
        if not req.image_id or not req.methods:
            with self._lock:
                self._show_error("No images in this split and class." if not req.image_id
                                 else "Choose at least one method in the sidebar.")
                self._settle(gen)
            return
        cheap = tuple(m for m in req.methods if m in self.catalogue.default_methods)
        if self.host is not None and cheap:
            # Warm the rest of this split in the background, for the default methods only: a
            # costly method (LIME, RISE, ...) is computed when someone asks for it, not for all.
            try:
                self.host.precompute(req.seed, req.split, cheap, req.target)
            except Exception:  # noqa: BLE001 - background warm-up only
                log.exception("precompute request failed")
        future = _COMPUTE.submit(self._compute, req)
        try:
            try:
                ex, pics = future.result(timeout=SLOW_AFTER)
            except FutureTimeout:
                with self._lock:
                    if gen == self._gen:  # only the newest request may switch the indicator on
                        self.computing = True
                        self._layout.loading = True
                ex, pics = future.result()
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the operator
            log.exception("explaining %s failed", req)
            with self._lock:
                if gen == self._gen:
                    self._show_error(f"Could not explain {req.image_id}: {exc}")
                self._settle(gen)
            return
        with self._lock:
            if gen == self._gen:
                self._render(ex, pics)
            self._settle(gen)  # an answer for an older request is dropped: the user has moved on

    def _settle(self, gen: int) -> None:
        """Mark request ``gen`` finished; the indicator goes off once the newest one is done."""
        self._finished = max(self._finished, gen)
        if self._finished >= self._gen:
            self.computing = False
            self._layout.loading = False

    def _show_error(self, message: str) -> None:
        self.error = message
        self._alert.object = message
        self._alert.alert_type = "danger"
        self._alert.visible = True
        self._content.visible = False

    # ---------------------------------------------------------------- drawing

    def _render(self, ex: Any, pics: figures.Pictures) -> None:
        with figures.RENDER_LOCK:
            self._draw(ex, pics)
        # Announced outside the drawing lock: views that follow the explanation draw their own.
        self.pictures = pics
        self.explanation = ex

    def _draw(self, ex: Any, pics: figures.Pictures) -> None:
        cat = self.catalogue
        s = self.state
        i, n = s.position
        self.error = ""
        self._alert.visible = False
        self._content.visible = True
        sz = PANE_SIZE
        self._img_slot.send((pics.image, "Image"))
        self._mask_slot.send((pics.mask_overlay, "Ground-truth defect" if ex.k else "Ground truth: no defect"))
        self._recon_slot.send((pics.reconstruction, pics.edge, "Decoder reconstruction"))
        self._pred.object = prediction_html(ex, cat)
        self._verdict.object = verdict_html(ex)
        self._table.value = self._table_frame(ex)
        self._table.height = 42 + 36 * len(ex.methods)
        dim = figures.grey(pics.image, 0.45).astype(np.uint8)
        rows = []
        for key in ex.methods:
            pic = pics.methods[key]
            heat = (pics.image, pic.heat, pics.edge, f"{pic.label}: heatmap")
            topk = (pic.topk if ex.rankable else dim,
                    f"{pic.label}: top-K pixels" if ex.rankable else f"{pic.label}: no top K")
            card = method_card_html(ex, key, cat, pic)
            if key in self._rows:
                h, t, row, c = self._rows[key]
                h.send(heat)
                t.send(topk)
                c.object = card
            else:
                h, t = figures.Slot("heat", heat, sz), figures.Slot("rgb", topk, sz)
                c = pn.pane.HTML(card, width=360, margin=(10, 10))
                row = pn.FlexBox(pn.pane.HoloViews(h.dmap, linked_axes=True, sizing_mode="fixed"),
                                 pn.pane.HoloViews(t.dmap, linked_axes=True, sizing_mode="fixed"),
                                 c, css_classes=["pe-method-row"], sizing_mode="stretch_width")
                self._rows[key] = (h, t, row, c)
            rows.append(self._rows[key][2])
        for key in [k for k in self._rows if k not in ex.methods]:
            del self._rows[key]
        if [id(r) for r in self._methods_col.objects] != [id(r) for r in rows]:
            self._methods_col.objects = rows
        # the title goes last: when it names the new image, everything else is already updated
        self._title.object = (
            f'<div class="pe-title-text" style="font-size:22px;font-weight:700">{html.escape(ex.image_id)}'
            f'<span style="font-weight:400;color:#555;font-size:17px"> · class {html.escape(ex.true_class)} '
            f'· image {i} / {n} · {ex.split} split · seed {ex.seed} · '
            f'{ex.image.shape[1]}×{ex.image.shape[0]} px as the model saw it</span></div>')

    @staticmethod
    def _table_frame(ex: Any) -> pd.DataFrame:
        df = ranking_frame(ex)
        out = pd.DataFrame({
            "Method": df["Method"],
            "TKO": [fmt(x) for x in df["TKO"]],
            "Lift": [fmt_lift(x) for x in df["Lift"]],
            "IoU": [fmt(x) for x in df["IoU"]],
            "Chance": [fmt(x, 4) for x in df["Chance"]],
            "Rank": df["Rank shown"],
            "Result": [result_label(x) for x in df["Win share"]],
        })
        return out
