"""The image panes of the per-image view: Bokeh figures built once, then updated in place.

A new image only replaces the arrays in each figure's data sources (and its title): no plot
is rebuilt, so "next image" costs a few milliseconds, and because every session owns its
figures, nothing here needs a process-wide lock (HoloViews, which is not thread-safe, is not
involved). The panes of one view share one pair of ranges: they pan and zoom together, with
y growing downwards like the array rows, so images stand upright.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, Range1d
from bokeh.plotting import figure

from pixel_evidence.dashboard.colours import HEAT_CMAP, RECON_CMAP, palette

HEAT_LABEL = "map: percentile 1 → 99.5"
RECON_LABEL = "P(defect)"
HEAT_ALPHA = 0.72
TOOLS = "pan,wheel_zoom,box_zoom,reset"


def packed(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W) uint32, the packed RGBA ``image_rgba`` draws (no copy)."""
    return np.ascontiguousarray(rgba).view(np.uint32)[..., 0]


def shared_ranges(size: int) -> tuple[Range1d, Range1d]:
    """x from 0 to ``size``, y inverted (row 0 at the top)."""
    return Range1d(0, size), Range1d(size, 0)


def _source(image: np.ndarray) -> ColumnDataSource:
    h, w = image.shape[:2]
    return ColumnDataSource({"image": [image], "x": [0], "y": [0], "dw": [w], "dh": [h]})


@contextmanager
def one_message() -> Iterator[None]:
    """Changes made inside reach the browser as one message where this thread may send them
    (no server, or the session's own event loop); elsewhere Panel schedules each as usual."""
    from panel.io.document import unlocked
    from panel.io.state import state

    doc = state.curdoc
    if doc is not None and doc.session_context is not None and not state._unblocked(doc):
        yield
        return
    with unlocked():
        yield


def _in_session(model: Any, update: Callable[[], None]) -> None:
    """Change a drawn Bokeh model safely: directly when this thread may (no server, or the
    session's own event loop), else on the session's next tick, as HoloViews does too."""
    from panel.io.document import unlocked
    from panel.io.state import state

    doc = model.document
    if doc is None:  # not drawn yet (a tab not opened): no page to keep in step
        update()
        return
    if doc.session_context is not None and not state._unblocked(doc):
        doc.add_next_tick_callback(update)
        return
    with unlocked():
        update()


class ImagePlot:
    """One pane: a figure with image layers, each fed by its own data source.

    ``layers`` names each layer's kind, bottom first: ``"rgba"`` ((H, W, 4) uint8 array) or a
    colour map name (float array in 0..1, with a colour bar titled ``label`` and a hover
    readout). :meth:`show` takes one array per layer.
    """

    def __init__(self, layers: tuple[str, ...], ranges: tuple[Range1d, Range1d], size: int, *,
                 toolbar: bool = False, label: str = ""):
        self.layers = layers
        self.figure = figure(frame_width=size, frame_height=size, x_range=ranges[0], y_range=ranges[1],
                             x_axis_type=None, y_axis_type=None, tools=TOOLS, active_drag="pan",
                             active_scroll="wheel_zoom", toolbar_location="above" if toolbar else None,
                             min_border=4, sizing_mode="fixed", align="start", margin=(2, 6),
                             width=None, height=None)  # the frame decides the size
        self.sources = []
        blank = np.zeros((2, 2), np.uint32)
        for kind in layers:
            source = _source(blank if kind == "rgba" else blank.astype(np.float32))
            self.sources.append(source)
            if kind == "rgba":
                self.figure.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=source)
                continue
            mapper = LinearColorMapper(palette=list(palette(kind)), low=0, high=1, nan_color="rgba(0, 0, 0, 0)")
            glyph = self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source,
                                      color_mapper=mapper, global_alpha=HEAT_ALPHA if kind == HEAT_CMAP else 1.0)
            self.figure.add_tools(HoverTool(renderers=[glyph], tooltips=[("x", "$x"), ("y", "$y"), (label, "@image")]))
            self.figure.add_layout(ColorBar(color_mapper=mapper, title=label, bar_line_color="black",
                                            major_tick_line_color="black", label_standoff=8), "right")

    def show(self, title: str, *arrays: np.ndarray) -> None:
        """Put new arrays (one per layer) and a new title on screen."""
        data = []
        for kind, arr in zip(self.layers, arrays):
            image = packed(arr) if kind == "rgba" else np.asarray(arr, np.float32)
            h, w = image.shape
            data.append({"image": [image], "x": [0], "y": [0], "dw": [w], "dh": [h]})

        def update() -> None:
            for source, new in zip(self.sources, data):
                source.data = new
            self.figure.title.text = title

        _in_session(self.figure, update)


    def resize(self, size: int) -> None:
        """A new frame size (the window changed): the pane grows or shrinks, its data stays."""
        if self.figure.frame_width == size:
            return

        def update() -> None:
            self.figure.update(frame_width=size, frame_height=size)

        _in_session(self.figure, update)


def show_extent(ranges: tuple[Range1d, Range1d], width: int, height: int) -> None:
    """Fit the shared ranges to a new image: it starts unzoomed, like a freshly drawn plot."""
    x, y = ranges

    def update() -> None:
        x.update(start=0, end=width, reset_start=0, reset_end=width)
        y.update(start=height, end=0, reset_start=height, reset_end=0)

    _in_session(x, update)


def rgb_plot(ranges: tuple[Range1d, Range1d], size: int, *, toolbar: bool = False) -> ImagePlot:
    return ImagePlot(("rgba",), ranges, size, toolbar=toolbar)


def heat_plot(ranges: tuple[Range1d, Range1d], size: int) -> ImagePlot:
    """Grey image under the display-normalised map (0..1, colour bar), defect outlined."""
    return ImagePlot(("rgba", HEAT_CMAP, "rgba"), ranges, size, label=HEAT_LABEL)


def recon_plot(ranges: tuple[Range1d, Range1d], size: int) -> ImagePlot:
    """The decoder's P(defect) (0..1, colour bar), defect outlined."""
    return ImagePlot((RECON_CMAP, "rgba"), ranges, size, label=RECON_LABEL)
