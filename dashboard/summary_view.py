"""The summary tab: win rates across seeds (under a chosen localisation score), TKO
distributions, agreement between methods, faithfulness, the randomization sanity check,
training curves and the confusion matrix.

Reads the tables written by ``pixel-evidence evaluate`` (through :mod:`engine.results`) and
the training histories stored in the checkpoint metadata. Everything here is read-only.
"""

from __future__ import annotations

import html
import math
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import param

from engine.metrics import SANITY_PASS_THRESHOLD
from engine.metrics.scores import EXTRA_SCORES, LOCALISATION_SCORES
from engine.results import (AGREEMENT_STATS, ANALYSIS_FILES, CHANCE, OVERALL, Results,
                            agreement_stats, confusion_matrix, defect_rows, faithfulness_stats, history_bands,
                            history_frame, load_results, localisation_win_rates, results_dir, sanity_stats,
                            stale_seeds, tko_stats, win_rate_stats)

from .figures import _hv, drawing
from .state import DashboardState

METHOD_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442"]
CHANCE_COLOUR = "#9a9a9a"
ALL_CLASSES = "all classes"
CURVE_COLOURS = {"train": "#E69F00", "val": "#56B4E9", "test": "#009E73"}
# What "the highest score wins the image" means under each localisation score.
# Order of the cards under "The numbers behind the plots".
TABLE_SECTIONS = ("win", "tko", "agreement", "faithfulness", "sanity", "curves", "confusion")
SPLIT_NOTE = "change the split in the sidebar"

_CACHE: dict[Path, tuple[tuple, Results]] = {}
_CACHE_LOCK = threading.Lock()


def _stamp(directory: Path) -> tuple:
    out = []
    for name in ("tko_table.csv", "win_rates.csv", "summary.json", *[f"{a}.csv" for a in ANALYSIS_FILES]):
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


def agreement_scale(stat: str) -> tuple[str, tuple[float, float]]:
    """Colour map and range of an agreement statistic, the same in every view: correlations
    run from -1 (red) to +1 (blue), the top-share IoU from 0 (white) to 1 (blue)."""
    return ("Blues", (0.0, 1.0)) if stat == "top_iou" else ("RdBu", (-1.0, 1.0))


def agreement_names(share: float | None) -> dict[str, str]:
    """Display name of each agreement statistic, the same in every view; ``share``: the top
    share of pixels the IoU compares, if known."""
    iou = f"top-{share:.0%} IoU" if share is not None else "top-share IoU"
    return {"pearson": "Pearson r", "spearman": "Spearman ρ", "top_iou": iou}


def method_colours(labels: dict[str, str]) -> dict[str, str]:
    """Label -> colour, in registry order, plus the chance baseline."""
    out = {label: METHOD_COLOURS[i % len(METHOD_COLOURS)] for i, label in enumerate(labels.values())}
    out["chance (K/N)"] = CHANCE_COLOUR
    return out


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


def analysis_command(engine: Any) -> str:
    """The command that writes the analysis tables, with this engine's --data / --models."""
    return evaluate_command(engine).replace("pixel-evidence evaluate",
                                            "pixel-evidence evaluate --metrics " + " ".join(ANALYSIS_FILES), 1)


def based_on(df: pd.DataFrame) -> str:
    """'64 images of seed 42' / '128 images from seeds 42, 43' / '640 images from 10 seeds (42-51)'.

    An image counts once per seed: each seed's model gives it its own maps."""
    n_images = len(df[["seed", "image_id"]].drop_duplicates())
    seeds = sorted(int(s) for s in df["seed"].unique())
    noun = "image" if n_images == 1 else "images"
    if len(seeds) == 1:
        return f"{n_images} {noun} of seed {seeds[0]}"
    if len(seeds) <= 4:
        return f"{n_images} {noun} from seeds {', '.join(map(str, seeds))}"
    return f"{n_images} {noun} from {len(seeds)} seeds ({seeds[0]}–{seeds[-1]})"


def _pm(mean: float, std: float) -> str:
    """'0.62 ± 0.11'; just the mean when the spread is undefined (a single image)."""
    return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def _hide_inner_labels(plot: Any, _element: Any) -> None:
    """Nested categorical axis: keep the class names, drop the crowded method names (see legend)."""
    for axis in plot.state.xaxis:
        axis.major_label_text_font_size = "0pt"
        if hasattr(axis, "group_text_font_size"):
            axis.group_text_font_size = "15px"


def _whiskers_on_top(plot: Any, _element: Any) -> None:
    """Bokeh draws error whiskers under the glyphs by default: the lower half would hide behind the bars."""
    plot.handles["glyph"].level = "annotation"


def _score_name(score: str) -> str:
    name = LOCALISATION_SCORES[score].label
    return name[:1].upper() + name[1:]


def _cell_labels(hv: Any, df: pd.DataFrame, kdims: list[str], text: str, dark: pd.Series) -> Any:
    """Cell texts of a heatmap: white on dark cells, near-black elsewhere."""
    return (hv.Labels(df[~dark], kdims, text).opts(text_font_size="14pt", text_color="#111")
            * hv.Labels(df[dark], kdims, text).opts(text_font_size="14pt", text_color="white"))


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
        # the choice lives in the shared state, so that it is part of the page URL; the widget
        # follows the state in _on_score (a two-way link would replay a value the state refused)
        self._score_select = pn.widgets.Select(label="Winner decided by", options={_score_name("tko"): "tko"},
                                               value="tko", width=300, css_classes=["pe-score-select"])
        self._score_select.param.watch(lambda e: setattr(self.state, "score", e.new), "value")
        self._stat_select = pn.widgets.RadioButtonGroup(
            label="Similarity", options={name: s for s, name in agreement_names(None).items()},
            value=state.agreement, color="primary", variant="outline", width=380)
        # the measure lives in the shared state (and the URL); the per-image view follows it too
        self._stat_select.link(state, value="agreement", bidirectional=True)
        self._win = pn.Column(sizing_mode="stretch_width")
        self._tko = pn.Column(sizing_mode="stretch_width")
        self._agreement = pn.Column(sizing_mode="stretch_width", css_classes=["pe-agreement-summary"])
        self._faithfulness = pn.Column(sizing_mode="stretch_width", css_classes=["pe-faithfulness-summary"])
        self._sanity = pn.Column(sizing_mode="stretch_width", css_classes=["pe-sanity-summary"])
        self._curves = pn.Column(sizing_mode="stretch_width")
        self._confusion = pn.Column(sizing_mode="stretch_width")
        self._tables = pn.Column(sizing_mode="stretch_width")
        self._sources: dict[str, list[tuple[str, pd.DataFrame]]] = {}
        self._holding = False  # True while several sections redraw: the cards are rebuilt once after
        self._confusion_frame = None
        self._layout = pn.Column(
            pn.Row(self._intro, self._reload, sizing_mode="stretch_width"), self._notice,
            self._win, self._tko, self._agreement, self._faithfulness, self._sanity, self._curves, self._confusion,
            self._tables, sizing_mode="stretch_width")
        self.load()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ---------------------------------------------------------------- data

    @drawing
    def load(self) -> None:
        self.results = cached_results(self.directory)
        self._win_cache: dict[str, pd.DataFrame] = {}
        scores = self.results.scores or ["tko"]
        self._score_select.options = {_score_name(s): s for s in scores}
        self._holding = True
        try:
            if self._score_available():
                self._score_select.value = self.state.score
            self._draw_static()
            self._draw_win()
            self._draw_sections()
        finally:
            self._holding = False
        self._draw_tables()

    def history(self) -> pd.DataFrame:
        return history_frame(self.engine.meta)

    def win_rates(self, score: str | None = None) -> pd.DataFrame:
        """Win rates per seed, split, class and method with ``score`` deciding each image's winner.

        TKO is the table evaluate wrote; other scores are recomputed from the main table with
        the same rule (correctly classified images only, unless the run counted all)."""
        score = score or self.state.score
        res: Results = self.results
        if score == "tko" or not res.available:
            return res.win_rates if res.win_rates is not None else pd.DataFrame()
        if score not in self._win_cache:
            counted_all = (res.summary or {}).get("counted_images") == "all defect images"
            self._win_cache[score] = localisation_win_rates(res.tko, score, include_misclassified=counted_all)
        return self._win_cache[score]

    def _analysis(self, name: str, section: pn.Column, title: str) -> pd.DataFrame | None:
        """The current split's rows of one analysis. When there are none, ``section`` says why
        (file missing, or only other splits computed), its tables are cleared and None returned."""
        df = self.results.analyses.get(name)
        rows = None if df is None else df[df["split"] == self.state.split]
        if rows is None or rows.empty:
            section.objects = self._missing(title, name) if rows is None else self._other_split(title, name)
            self._set_tables(name, [])
            return None
        return rows

    # ---------------------------------------------------------------- drawing helpers

    def _legend_html(self, present: set[str]) -> pn.pane.HTML:
        items = "".join(
            f'<span style="display:inline-flex;align-items:center;gap:6px;margin-right:16px">'
            f'<span style="width:18px;height:18px;background:{c};border:1px solid #333;display:inline-block"></span>'
            f'<b>{html.escape(label)}</b></span>' for label, c in sorted(self.colours.items()) if label in present)
        return pn.pane.HTML(f'<div style="font-size:15px">{items}</div>', sizing_mode="stretch_width")

    def _method_order(self, methods: Any) -> list[str]:
        """Method keys in registry order, unknown ones after them."""
        present = set(methods)
        return [m for m in self.labels if m in present] + sorted(present - set(self.labels))

    @staticmethod
    def _text(body: str) -> pn.pane.HTML:
        return pn.pane.HTML(f'<div style="font-size:15px;line-height:1.5;max-width:1100px">{body}</div>',
                            sizing_mode="stretch_width")

    def _missing(self, title: str, name: str) -> list[Any]:
        """Header plus the one line that says how to make a missing analysis table."""
        return [pn.pane.Markdown(title), self._text(
            f"Not computed yet ({name}.csv is missing). Make it with "
            f"<code>{html.escape(analysis_command(self.engine))}</code>, then press “Reload results”.")]

    def _other_split(self, title: str, name: str) -> list[Any]:
        """Header plus a line naming the splits an analysis does cover."""
        done = [s for s in ("test", "train") if s in set(self.results.analyses[name]["split"])]
        return [pn.pane.Markdown(title), self._text(
            f"No {name} rows for the {html.escape(self.state.split)} split; computed for the "
            f"{' and '.join(done) or 'no'} split{'s' if len(done) > 1 else ''} ({SPLIT_NOTE}).")]

    def _set_tables(self, section: str, tables: list[tuple[str, pd.DataFrame]]) -> None:
        self._sources[section] = tables
        if not self._holding:
            self._draw_tables()

    def _with_labels(self, df: pd.DataFrame, column: str = "method", at: int = 1) -> pd.DataFrame:
        """A copy with a readable ``Method`` column in place of the method keys."""
        df = df.copy()
        df.insert(min(at, len(df.columns)), "Method", [_label(self.labels, m) for m in df[column]])
        return df.drop(columns=[column])

    # ---------------------------------------------------------------- drawing

    def _draw_static(self) -> None:
        hv = _hv()
        res: Results = self.results
        counted = (res.summary or {}).get("counted_images", "correctly classified defect images")
        self._intro.object = f"""
<div style="font-size:15px;line-height:1.5">
<b>Win rate</b> = share of the {html.escape(counted)} on which a method has the highest score
(Top-K overlap unless you choose another score below); when k methods tie for first, each gets 1/k of that
image. Good images (no defect pixels) are not counted. Boxes show the spread <i>across seeds</i> (hover for the
numbers). <b>TKO</b> is beside its chance level K/N (the expected TKO of a random map), shown as the grey box.<br>
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

        if res.available:
            present = set(res.tko["method"]) | set(res.win_rates["method"])
            self.colours = method_colours({m: self.labels.get(m, m) for m in self._method_order(present)})

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
            self._sources["tko"] = [("TKO per method (defect images; chance = K/N)", self._with_labels(tko_stats(res.tko)))]
        else:
            self._tko.objects = []
            self._sources["tko"] = []

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
            self._sources["curves"] = [("Training curves (mean ± std over seeds)", bands)]
        else:
            self._curves.objects = [pn.pane.Markdown("## Training\nNo per-epoch history in the checkpoints.")]
            self._sources["curves"] = []

    def _score_available(self) -> bool:
        """Whether the results hold the chosen score; if not, fall back to TKO with a notice."""
        scores = self.results.scores or ["tko"]
        if self.state.score in scores:
            return True
        self.state.notices = list(self.state.notices) + [
            f"These results have no {LOCALISATION_SCORES[self.state.score].label} column; winners are decided by "
            "Top-K overlap."]
        self.state.score = "tko"
        return False

    @param.depends("state.score", watch=True)
    @drawing
    def _on_score(self) -> None:
        if self._score_available():
            self._score_select.value = self.state.score
            self._draw_win()

    def _draw_win(self) -> None:
        """Win-rate boxes per class and split, across seeds, with the chosen score deciding each image."""
        hv = _hv()
        res: Results = self.results
        rates = self.win_rates()
        if not res.available or rates.empty:
            self._win.objects = []
            self._set_tables("win", [])
            return
        name = LOCALISATION_SCORES[self.state.score].short
        # every score's meaning, the one deciding now in full colour
        notes = "<br>".join(
            f"<span style='color:{'#111' if s == self.state.score else '#777'}'><b>{html.escape(_score_name(s))}</b>: "
            f"{html.escape(LOCALISATION_SCORES[s].note)}</span>" for s in (res.scores or ["tko"]))
        if len(res.scores) < 2:
            others = html.escape(", ".join(LOCALISATION_SCORES[s].short for s in EXTRA_SCORES))
            notes += (f"<br><span style='color:#555'>Other scores ({others}): "
                      f"<code>{html.escape(evaluate_command(self.engine))} --metrics {' '.join(EXTRA_SCORES)}"
                      "</code></span>")
        head = [pn.pane.Markdown("## Which method wins?"),
                pn.Row(self._score_select, self._text(notes), sizing_mode="stretch_width")]
        rates = rates.copy()
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
                title=f"Win rate per class by {name}, {split} split ({n_seeds} seed{'s' if n_seeds != 1 else ''})",
                tools=["hover"], fontscale=1.2, xrotation=0, box_line_color="#333")
            plots.append(box)
        if plots:
            self._win.objects = [*head, self._legend_html(set(rates["Method"])),
                                 *[pn.pane.HoloViews(p, linked_axes=False, sizing_mode="fixed") for p in plots]]
        else:
            self._win.objects = [*head, pn.pane.Alert(
                f"No win rates by {name}: no seed has a correctly classified defect image with this score.",
                alert_type="info")]
        stats = self._with_labels(win_rate_stats(self.win_rates()), at=2)
        self._set_tables("win", [(f"Win rates across seeds (winner by {name})", stats)])

    @param.depends("state.split", watch=True)
    @drawing
    def _on_split(self) -> None:
        self._holding = True
        try:
            self._draw_sections()
        finally:
            self._holding = False
        self._draw_tables()

    def _draw_sections(self) -> None:
        """Everything that follows the sidebar's split (the confusion matrix also follows the seed)."""
        self._draw_agreement()
        self._draw_faithfulness()
        self._draw_sanity()
        self._draw_confusion()

    @param.depends("state.agreement", watch=True)
    @drawing
    def _draw_agreement(self) -> None:
        hv = _hv()
        split = self.state.split
        title = f"## Do the methods agree? ({split} split)"
        rows = self._analysis("agreement", self._agreement, title)
        if rows is None:
            return
        stats = agreement_stats(rows)
        fractions = {s.get("fraction") for s in self.results.settings.get("agreement", [])}
        share = next(iter(fractions)) if len(fractions) == 1 and None not in fractions else None
        names = agreement_names(share)
        iou = names["top_iou"]
        stat = self.state.agreement
        # symmetric matrix: each pair is stored once, the heatmap shows it on both sides
        pairs = stats[["method_a", "method_b", f"{stat}_mean", f"{stat}_std", "n_images", "n_seeds"]].set_axis(
            ["a", "b", "mean", "std", "n_images", "n_seeds"], axis=1)
        # the diagonal (a method with itself) is grey, not coloured like a measured 0
        own = pd.DataFrame({"a": self._method_order(set(pairs["a"]) | set(pairs["b"]))}).assign(b=lambda d: d["a"])
        long = pd.concat([pairs, pairs.rename(columns={"a": "b", "b": "a"}), own], ignore_index=True)
        long["Method"] = [_label(self.labels, m) for m in long["a"]]
        long["compared with"] = [_label(self.labels, m) for m in long["b"]]
        long["text"] = ["—" if pd.isna(m) else _pm(m, s) for m, s in zip(long["mean"], long["std"])]
        order = [_label(self.labels, m) for m in self._method_order(set(long["a"]))]
        cmap, clim = agreement_scale(stat)
        heat = hv.HeatMap(long, ["Method", "compared with"], ["mean", "std", "n_images"]).redim.values(
            **{"Method": order, "compared with": order}).opts(
            cmap=cmap, clim=clim, colorbar=True, tools=["hover"],
            clipping_colors={"NaN": "#e4e4e4"},
            width=140 * len(order) + 220, height=110 * len(order) + 120, fontscale=1.2, invert_yaxis=True,
            xlabel="", ylabel="", clabel=names[stat], title=f"{names[stat]} between maps, mean ± std over images")
        labels = _cell_labels(hv, long, ["Method", "compared with"], "text", long["mean"].abs() > 0.6)
        self._agreement_frame = long
        self._stat_select.options = {names[s]: s for s in AGREEMENT_STATS}
        self._agreement.objects = [
            pn.pane.Markdown(title),
            self._text(f"How alike are two methods' maps of the same image? <b>Pearson</b>: correlation of the pixel "
                       f"values; <b>Spearman</b>: correlation of their ranks; <b>{html.escape(iou)}</b>: overlap of "
                       "the two maps' highest pixels (1 = the same pixels). Agreement is not correctness: two "
                       f"methods can agree on the wrong place. Based on {based_on(rows)} ({SPLIT_NOTE})."),
            self._stat_select,
            pn.pane.HoloViews(heat * labels, linked_axes=False, sizing_mode="fixed")]
        table = stats.drop(columns=["split"]).assign(
            method_a=[_label(self.labels, m) for m in stats["method_a"]],
            method_b=[_label(self.labels, m) for m in stats["method_b"]])
        self._set_tables("agreement", [(f"Agreement between methods ({split} split)",
                                        table.rename(columns={"method_a": "method A", "method_b": "method B"}))])

    def _mean_std_bars(self, stats: pd.DataFrame, value: str, title: str, ylabel: str) -> Any:
        """Bars of ``<value>_mean`` per method with ± ``<value>_std`` error bars, in method colours."""
        hv = _hv()
        d = stats.assign(Method=[_label(self.labels, m) for m in stats["method"]],
                         mean=stats[f"{value}_mean"], std=stats[f"{value}_std"].fillna(0.0))
        order = [_label(self.labels, m) for m in self._method_order(d["method"])]
        bars = hv.Bars(d, "Method", ["mean", "std", "n_images"]).redim.values(Method=order).opts(
            color=hv.dim("Method").categorize(self.colours, default="#888"), line_color="#333", tools=["hover"],
            ylim=(0, 1.05), width=max(360, 110 * len(order) + 120), height=340, fontscale=1.2, title=title,
            ylabel=ylabel, xlabel="", show_grid=True)
        errors = hv.ErrorBars(d, "Method", ["mean", "std"]).opts(line_width=2, color="#111",
                                                                  hooks=[_whiskers_on_top])
        return bars * errors

    def _draw_faithfulness(self) -> None:
        split = self.state.split
        title = f"## Are the maps faithful to the model? ({split} split)"
        rows = self._analysis("faithfulness", self._faithfulness, title)
        if rows is None:
            return
        stats = faithfulness_stats(rows)
        blocks = []
        for start in sorted(stats["start"].unique()):
            part = stats[stats["start"] == start]
            here = rows[rows["start"] == start]
            steps = sorted(int(s) for s in here["steps"].dropna().unique())
            blocks.append(self._text(
                f"Start image: <b>{html.escape(str(start))}</b> (removed pixels become {html.escape(str(start))}; "
                f"insertion starts from it){', ' + '/'.join(map(str, steps)) + ' steps per curve' if steps else ''}. "
                f"Based on {based_on(here)}."))
            blocks.append(pn.Row(*[pn.pane.HoloViews(
                self._mean_std_bars(part, value, f"{kind} AUC ({guide})", f"{kind.lower()} AUC"),
                linked_axes=False, sizing_mode="fixed")
                for value, kind, guide in (("deletion_auc", "Deletion", "lower = more faithful"),
                                           ("insertion_auc", "Insertion", "higher = more faithful"))]))
        self._faithfulness_frame = stats
        self._faithfulness.objects = [
            pn.pane.Markdown(title),
            self._text("<b>Deletion</b> removes the map's most important pixels first and follows the model's "
                       "probability for the explained class; <b>insertion</b> adds them back to an empty start "
                       "image. Area under each curve, mean ± std over images: <b>lower deletion AUC and higher "
                       "insertion AUC = the map is more faithful to the model</b> (this does not use the defect "
                       "masks)."),
            *blocks]
        self._set_tables("faithfulness", [(f"Deletion / insertion AUC per method ({split} split)",
                                           self._with_labels(stats.drop(columns=["split"]), at=1))])

    def _draw_sanity(self) -> None:
        split = self.state.split
        title = f"## Sanity check: does the map depend on the model's weights? ({split} split)"
        rows = self._analysis("sanity", self._sanity, title)
        if rows is None:
            return
        stats = sanity_stats(rows)
        cell = "padding:6px 14px;border-bottom:1px solid #ddd;text-align:left"
        body = []
        for r in stats.set_index("method").loc[self._method_order(stats["method"])].reset_index().itertuples():
            n, ok = int(r.n_images), int(r.n_passed)
            noun = "image" if n == 1 else "images"
            if ok == n:
                verdict = f'<span style="color:#1a7f37">✔ passed on {ok} of {n} {noun}</span>'
            else:
                verdict = (f'<span style="color:#B31B1B"><b>✘ FAILED on {n - ok} of {n} {noun}</b>: the map barely '
                           "changes when the model's weights are random</span>")
            rho = "—" if pd.isna(r.final_spearman_mean) else f"{r.final_spearman_mean:.2f}"
            body.append(f"<tr><td style='{cell}'><b>{html.escape(_label(self.labels, r.method))}</b></td>"
                        f"<td style='{cell}'>{verdict}</td><td style='{cell};text-align:right'>{rho}</td></tr>")
        table = (f"<table class='pe-sanity-table' style='border-collapse:collapse;font-size:15px'><tr>"
                 + "".join(f"<th style='{cell}'>{h}</th>" for h in ("Method", "Randomization check",
                                                                   "mean final Spearman ρ"))
                 + "</tr>" + "".join(body) + "</table>")
        self._sanity_frame = stats
        self._sanity.objects = [
            pn.pane.Markdown(title),
            self._text("The classifier head and then every encoder stage, top down, get random weights, and the map "
                       "is recomputed. A method passes on an image when its map from the fully random model no "
                       f"longer resembles the trained model's map (|Spearman ρ| below {SANITY_PASS_THRESHOLD}). A map "
                       "that survives randomization shows the input (edges, colours), not what the model learned. "
                       f"Based on {based_on(rows[rows['final']])}."),
            pn.pane.HTML(table, sizing_mode="stretch_width")]
        self._set_tables("sanity", [(f"Randomization check per method ({split} split)",
                                     self._with_labels(stats.drop(columns=["split"]), at=0)),
                                    (f"Randomization check, every stage ({split} split)",
                                     self._with_labels(rows.drop(columns=["split"]), at=3))])

    @param.depends("state.seed", watch=True)
    @drawing
    def _draw_confusion(self) -> None:
        hv = _hv()
        res: Results = self.results
        seed, split = int(self.state.seed), self.state.split
        if not (res.available and ((res.tko["seed"] == seed) & (res.tko["split"] == split)).any()):
            self._confusion.objects = [pn.pane.Markdown(
                f"## Confusion matrix, seed {seed}, {split} split\nNot in the results yet.")]
            self._confusion_frame = None
            self._set_tables("confusion", [])
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
        labels = _cell_labels(hv, long, ["predicted", "true"], "count", long["count"] > top * 0.55)
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
        self._set_tables("confusion", [(f"Confusion matrix counts (seed {seed}, {split})", self._confusion_frame)])

    def _draw_tables(self) -> None:
        cards = []
        for section in TABLE_SECTIONS:
            for title, df in self._sources.get(section, []):
                df = df.copy()
                for col in df.columns:
                    if pd.api.types.is_float_dtype(df[col]):
                        df[col] = df[col].round(4)
                cards.append(pn.Card(
                    pn.widgets.Tabulator(df, disabled=True, show_index=False, sizing_mode="stretch_width",
                                         pagination="local", page_size=12, layout="fit_data_fill"),
                    title=title, collapsed=True, sizing_mode="stretch_width"))
        self._tables.objects = ([pn.pane.Markdown("## The numbers behind the plots")] + cards) if cards else []
