"""The summary tab: win rates across seeds, TKO distributions, training curves, confusion matrix.

Reads the tables written by ``pixel-evidence evaluate`` (through :mod:`engine.results`) and
the training histories stored in the checkpoint metadata. Everything here is read-only.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import param

from engine.results import (CHANCE, OVERALL, Results, confusion_matrix, defect_rows, history_bands, history_frame,
                            load_results, results_dir, stale_seeds, tko_stats, win_rate_stats)

from .state import DashboardState

METHOD_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442"]
CHANCE_COLOUR = "#9a9a9a"
ALL_CLASSES = "all classes"
CURVE_COLOURS = {"train": "#E69F00", "val": "#56B4E9", "test": "#009E73"}

_CACHE: dict[Path, tuple[tuple, Results]] = {}
_CACHE_LOCK = threading.Lock()


def _stamp(directory: Path) -> tuple:
    out = []
    for name in ("tko_table.csv", "win_rates.csv", "summary.json"):
        p = directory / name
        try:
            st = p.stat()
            out.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((name, None, None))
    return tuple(out)


def cached_results(directory: Path) -> Results:
    """``load_results`` shared by all sessions, re-read only when a file changed."""
    directory = Path(directory)
    stamp = _stamp(directory)
    with _CACHE_LOCK:
        hit = _CACHE.get(directory)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    results = load_results(directory)
    with _CACHE_LOCK:
        _CACHE[directory] = (stamp, results)
    return results


def method_colours(labels: dict[str, str]) -> dict[str, str]:
    """Label -> colour, in registry order, plus the chance baseline."""
    out = {label: METHOD_COLOURS[i % len(METHOD_COLOURS)] for i, label in enumerate(labels.values())}
    out["chance (K/N)"] = CHANCE_COLOUR
    return out


def _hv():
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the bokeh backend's options

    return hv


def _label(labels: dict[str, str], method: str) -> str:
    return "chance (K/N)" if method == CHANCE else labels.get(method, method)


def evaluate_command(engine: Any) -> str:
    from .host import DEFAULT_MODELS

    models = Path(engine.models_dir)
    parts = ["pixel-evidence evaluate"]
    default_data = "synthetic" in str(engine.data_root) and ".cache" in str(engine.data_root)
    if not default_data:
        parts.append(f"--data {engine.data_root}")
    if models.resolve() != DEFAULT_MODELS.resolve():
        parts.append(f"--models {models}")
    return " ".join(parts)


def _hide_inner_labels(plot: Any, _element: Any) -> None:
    """Nested categorical axis: keep the class names, drop the crowded method names (see legend)."""
    for axis in plot.state.xaxis:
        axis.major_label_text_font_size = "0pt"
        if hasattr(axis, "group_text_font_size"):
            axis.group_text_font_size = "15px"


class SummaryView(pn.viewable.Viewer):
    """Across-seed plots and the tables behind them."""

    state = param.ClassSelector(class_=DashboardState)
    results = param.Parameter(default=None)

    def __init__(self, state: DashboardState, engine: Any, **params: Any):
        super().__init__(state=state, **params)
        self.engine = engine
        self.labels = dict(state.catalogue.method_labels)
        self.colours = method_colours(self.labels)
        self.directory = results_dir(engine.models_dir)
        self._reload = pn.widgets.Button(label="Reload results", width=140)
        self._reload.on_click(lambda _e: self.load())
        self._intro = pn.pane.HTML("", sizing_mode="stretch_width")
        self._notice = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width")
        self._win = pn.Column(sizing_mode="stretch_width")
        self._tko = pn.Column(sizing_mode="stretch_width")
        self._curves = pn.Column(sizing_mode="stretch_width")
        self._confusion = pn.Column(sizing_mode="stretch_width")
        self._tables = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(
            pn.Row(self._intro, self._reload, sizing_mode="stretch_width"), self._notice,
            self._win, self._tko, self._curves, self._confusion, self._tables, sizing_mode="stretch_width")
        self.load()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ---------------------------------------------------------------- data

    def load(self) -> None:
        self.results = cached_results(self.directory)
        self._draw_static()
        self._draw_confusion()

    def history(self) -> pd.DataFrame:
        return history_frame(self.engine.meta)

    # ---------------------------------------------------------------- drawing

    def _legend_html(self, present: set[str]) -> pn.pane.HTML:
        items = "".join(
            f'<span style="display:inline-flex;align-items:center;gap:6px;margin-right:16px">'
            f'<span style="width:18px;height:18px;background:{c};border:1px solid #333;display:inline-block"></span>'
            f'<b>{html.escape(label)}</b></span>' for label, c in sorted(self.colours.items()) if label in present)
        return pn.pane.HTML(f'<div style="font-size:15px">{items}</div>', sizing_mode="stretch_width")

    def _draw_static(self) -> None:
        hv = _hv()
        res: Results = self.results
        counted = (res.summary or {}).get("counted_images", "correctly classified defect images")
        self._intro.object = f"""
<div style="font-size:15px;line-height:1.5">
<b>Win rate</b> = share of the {html.escape(counted)} on which a method has the highest Top-K overlap;
when k methods tie for first, each gets 1/k of that image. Good images (no defect pixels) are not counted.
Boxes show the spread <i>across seeds</i> (hover for the numbers). <b>TKO</b> is beside its chance level
K/N (the expected TKO of a random map), shown as the grey box.<br>
<span style="color:#555">Results folder: {html.escape(str(self.directory))}</span></div>"""
        notes = []
        if not res.available:
            notes.append(f"No evaluation results in {self.directory} yet. Make them with "
                         f"<code>{html.escape(evaluate_command(self.engine))}</code> "
                         "(then press “Reload results”). Training curves below come from the checkpoints.")
        notes += [html.escape(p) for p in res.problems]
        stale = stale_seeds(res, self.engine.meta) if res.available else []
        if stale:
            notes.append(f"Results of seed(s) {', '.join(map(str, stale))} were computed with other weights "
                         f"than the current models; rerun <code>{html.escape(evaluate_command(self.engine))} "
                         "--force</code>.")
        self._notice.object = "<br>".join(notes)
        self._notice.alert_type = "warning" if notes else "info"
        self._notice.visible = bool(notes)

        tables: list[tuple[str, pd.DataFrame]] = []
        if res.available:
            present = set(res.tko["method"]) | set(res.win_rates["method"])
            ordered = {m: l for m, l in self.labels.items() if m in present}
            ordered.update({m: m for m in sorted(present) if m not in ordered})
            self.colours = method_colours(ordered)
        # --- win rates
        if res.available and not res.win_rates.empty:
            rates = res.win_rates.copy()
            rates["Method"] = [self.labels.get(m, m) for m in rates["method"]]
            # HoloViews sorts the class axis alphabetically: "all classes" lands first, where it reads best
            rates["class"] = rates["class"].replace({OVERALL: ALL_CLASSES})
            order = [ALL_CLASSES] + [c for c in sorted(rates["class"].unique()) if c != ALL_CLASSES]
            plots = []
            for split in [s for s in ("test", "train") if s in set(rates["split"])]:
                d = rates[(rates["split"] == split) & rates["win_rate"].notna()].copy()
                if d.empty:
                    continue
                classes_here = [c for c in order if c in set(d["class"])]
                methods_here = [m for m in self.colours if m in set(d["Method"])]
                n_seeds = d["seed"].nunique()
                box = hv.BoxWhisker(d, ["class", "Method"], "win_rate").redim.values(
                    **{"class": classes_here, "Method": methods_here}).opts(
                    box_fill_color="Method", cmap=self.colours, ylim=(-0.03, 1.03), show_legend=False,
                    width=min(1100, max(560, 44 * len(classes_here) * len(methods_here) + 100)), height=360,
                    xlabel="", ylabel="win rate", hooks=[_hide_inner_labels],
                    title=f"Win rate per class, {split} split ({n_seeds} seed{'s' if n_seeds != 1 else ''})",
                    tools=["hover"], fontscale=1.2, xrotation=0, box_line_color="#333")
                plots.append(box)
            if plots:
                self._win.objects = [pn.pane.Markdown("## Which method wins?"), self._legend_html(set(rates["Method"])),
                                     *[pn.pane.HoloViews(p, linked_axes=False, sizing_mode="fixed") for p in plots]]
            else:
                self._win.objects = [pn.pane.Markdown("## Which method wins?"), pn.pane.Alert(
                    "No win rates: no seed has a correctly classified defect image in these results.",
                    alert_type="info")]
            stats = win_rate_stats(res.win_rates)
            stats.insert(2, "Method", [self.labels.get(m, m) for m in stats["method"]])
            tables.append(("Win rates across seeds", stats.drop(columns=["method"])))
        else:
            self._win.objects = []

        # --- TKO distributions
        if res.available and res.tko["tko"].notna().any():
            d = defect_rows(res.tko)
            d["Method"] = [_label(self.labels, m) for m in d["method"]]
            plots = []
            for split in [s for s in ("test", "train") if s in set(d["split"])]:
                part = d[d["split"] == split]
                n_img = part[part["method"] == CHANCE].shape[0]
                box = hv.BoxWhisker(part, ["Method"], "tko").redim.values(
                    Method=[m for m in self.colours if m in set(part["Method"])]).opts(
                    box_fill_color="Method", cmap=self.colours, ylim=(-0.03, 1.03), width=560, height=360,
                    xrotation=12,
                    show_legend=False, ylabel="Top-K overlap (TKO)", fontscale=1.2, box_line_color="#333",
                    title=f"TKO per defect image, {split} split", tools=["hover"],
                    xlabel=f"{n_img} defect image × seed pairs")
                plots.append(box)
            self._tko.objects = [pn.pane.Markdown("## How much of the defect do the top-K pixels cover?"),
                                 pn.Row(*[pn.pane.HoloViews(p, linked_axes=False, sizing_mode="fixed") for p in plots])]
            stats = tko_stats(res.tko)
            stats.insert(1, "Method", [_label(self.labels, m) for m in stats["method"]])
            tables.append(("TKO per method (defect images; chance = K/N)", stats.drop(columns=["method"])))
        else:
            self._tko.objects = []

        # --- training curves
        bands = history_bands(self.history())
        if not bands.empty:
            plots = []
            for kind, metrics, ylabel in (("Loss", ("train_loss", "val_loss", "test_loss"), "loss"),
                                          ("Balanced accuracy", ("val_balanced_accuracy", "test_balanced_accuracy"),
                                           "balanced accuracy")):
                layers = []
                for metric in metrics:
                    b = bands[bands["metric"] == metric]
                    if b.empty:
                        continue
                    part = metric.split("_")[0]
                    colour = CURVE_COLOURS.get(part, "#333")
                    b = b.assign(lower=b["mean"] - b["std"], upper=b["mean"] + b["std"])
                    layers.append(hv.Area(b, "epoch", ["lower", "upper"], label=part).opts(
                        color=colour, alpha=0.25, line_alpha=0))
                    layers.append(hv.Curve(b, "epoch", ["mean", "std", "n_seeds"], label=part).opts(
                        color=colour, line_width=3, tools=["hover"]))
                    layers.append(hv.Scatter(b, "epoch", "mean", label=part).opts(color=colour, size=6))
                if layers:
                    n = int(bands["n_seeds"].max())
                    plots.append(hv.Overlay(layers).opts(
                        title=f"{kind}, mean ± std ({n} seed{'s' if n != 1 else ''})",
                        width=520, height=300, ylabel=ylabel, xlabel="epoch", legend_position="right",
                        fontscale=1.2, show_grid=True))
            self._curves.objects = [pn.pane.Markdown("## Training: loss and balanced accuracy"),
                                    pn.Row(*[pn.pane.HoloViews(p, linked_axes=False, sizing_mode="fixed") for p in plots])]
            tables.append(("Training curves (mean ± std over seeds)", bands))
        else:
            self._curves.objects = [pn.pane.Markdown("## Training\nNo per-epoch history in the checkpoints.")]

        self._table_sources = tables
        self._draw_tables()

    @param.depends("state.seed", "state.split", watch=True)
    def _draw_confusion(self) -> None:
        hv = _hv()
        res: Results = self.results
        seed, split = int(self.state.seed), self.state.split
        if not (res.available and ((res.tko["seed"] == seed) & (res.tko["split"] == split)).any()):
            self._confusion.objects = [pn.pane.Markdown(
                f"## Confusion matrix, seed {seed}, {split} split\nNot in the results yet.")]
            self._confusion_frame = None
            self._draw_tables()
            return
        mat = confusion_matrix(res.tko, seed, split, self.state.catalogue.classes)
        long = mat.stack().rename("count").reset_index()
        long["share"] = long["count"] / long.groupby("true")["count"].transform("sum").where(lambda s: s > 0)
        order = list(mat.index)
        heat = hv.HeatMap(long, ["predicted", "true"], ["count", "share"]).opts(
            cmap="Blues", colorbar=True, tools=["hover"], width=460, height=400, fontscale=1.2,
            invert_yaxis=True, xlabel="predicted class", ylabel="true class", clim=(0, None),
            title=f"Confusion matrix, seed {seed}, {split} split")
        heat = heat.redim.values(predicted=order, true=order)
        top = max(int(long["count"].max()), 1)
        dark = long["count"] > top * 0.55
        labels = (hv.Labels(long[~dark], ["predicted", "true"], "count").opts(text_font_size="14pt", text_color="#111")
                  * hv.Labels(long[dark], ["predicted", "true"], "count").opts(text_font_size="14pt",
                                                                               text_color="white"))
        correct = int(sum(mat.loc[c, c] for c in order if c in mat.columns))
        total = int(mat.values.sum())
        recalls = [mat.loc[c, c] / mat.loc[c].sum() for c in order if mat.loc[c].sum() > 0]
        bacc = sum(recalls) / len(recalls) if recalls else float("nan")
        text = pn.pane.HTML(
            f'<div style="font-size:16px;line-height:1.6">accuracy <b>{correct}/{total}</b> = {correct / max(total, 1):.3f}'
            f'<br>balanced accuracy <b>{bacc:.3f}</b><br><span style="color:#555">Only correctly classified defect '
            'images count towards win rates.</span></div>', width=260)
        self._confusion.objects = [pn.pane.Markdown(f"## Classification (seed {seed}, {split} split)"),
                                   pn.Row(pn.pane.HoloViews(heat * labels, linked_axes=False, sizing_mode="fixed"), text)]
        self._confusion_frame = mat.reset_index()
        self._draw_tables()

    def _draw_tables(self) -> None:
        sources = list(getattr(self, "_table_sources", []))
        mat = getattr(self, "_confusion_frame", None)
        if mat is not None:
            sources.append((f"Confusion matrix counts (seed {self.state.seed}, {self.state.split})", mat))
        cards = []
        for title, df in sources:
            df = df.copy()
            for col in df.columns:
                if pd.api.types.is_float_dtype(df[col]):
                    df[col] = df[col].round(4)
            cards.append(pn.Card(
                pn.widgets.Tabulator(df, disabled=True, show_index=False, sizing_mode="stretch_width",
                                     pagination="local", page_size=12, layout="fit_data_fill"),
                title=title, collapsed=True, sizing_mode="stretch_width"))
        self._tables.objects = ([pn.pane.Markdown("## The numbers behind the plots")] + cards) if cards else []
