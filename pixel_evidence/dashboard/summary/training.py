"""Training: loss and balanced accuracy per epoch, mean ± std bands over seeds."""

from __future__ import annotations

import panel as pn
import param

from pixel_evidence.dashboard.charts import drawing, hv
from pixel_evidence.dashboard.colours import CURVE_COLOURS
from pixel_evidence.dashboard.summary.section import Section, chart
from pixel_evidence.results import history_bands


def integer_epochs(plot, _element) -> None:
    """Ticks on whole epochs only: a two-epoch run is not labelled 1.2, 1.4, …"""
    from bokeh.models import BasicTicker

    plot.state.xaxis.ticker = BasicTicker(min_interval=1)


PANELS = (("Loss", ("train_loss", "val_loss", "test_loss"), "loss"),
          ("Balanced accuracy", ("val_balanced_accuracy", "test_balanced_accuracy"), "balanced accuracy"))


class TrainingSection(Section):
    key = "curves"

    @param.depends("store.results", watch=True)  # a reload also rereads the histories
    @drawing
    def _draw(self) -> None:
        bands = history_bands(self.store.history())
        if bands.empty:
            self.show([pn.pane.Markdown("## Training\nNo per-epoch history in the checkpoints.")], [])
            return
        plots = []
        for kind, metrics, ylabel in PANELS:
            layers = []
            for metric in metrics:
                b = bands[bands["metric"] == metric]
                if b.empty:
                    continue
                part = metric.split("_")[0]
                colour = CURVE_COLOURS.get(part, "#333")
                b = b.assign(lower=b["mean"] - b["std"], upper=b["mean"] + b["std"])
                layers.append(hv().Area(b, "epoch", ["lower", "upper"], label=part).opts(
                    color=colour, alpha=0.25, line_alpha=0))
                layers.append(hv().Curve(b, "epoch", ["mean", "std", "n_seeds"], label=part).opts(
                    color=colour, line_width=3, tools=["hover"]))
                layers.append(hv().Scatter(b, "epoch", "mean", label=part).opts(color=colour, size=6))
            if layers:
                n = int(bands["n_seeds"].max())
                plots.append(hv().Overlay(layers).opts(
                    title=f"{kind}, mean ± std ({n} seed{'s' if n != 1 else ''})",
                    width=520, height=300, ylabel=ylabel, xlabel="epoch", legend_position="right",
                    fontscale=1.2, show_grid=True, hooks=[integer_epochs]))
        self.show([pn.pane.Markdown("## Training: loss and balanced accuracy"), *[chart(p) for p in plots]],
                  [("Training curves (mean ± std over seeds)", bands)])
