"""Pictures of one explanation: numpy arrays in, RGB arrays and HoloViews elements out.

Colour meaning is fixed across the whole dashboard (and the PNG/HTML exports):

- attribution heatmaps: ``inferno`` (dark = low, yellow = high), every map divided by its
  own 99.5th percentile and clipped to 0..1 for display only (scores use the raw map);
- decoder reconstruction: ``cividis``, a probability 0..1;
- top-K picture (Okabe-Ito colours, distinguishable with the common colour-vision
  deficiencies): hit = blue, miss = yellow, false alarm = vermillion; pixels exactly at the
  cut-off value (ties, counted fractionally) in pale versions of the hit / false-alarm colours.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from engine.results import (PIXEL_FALSE_ALARM, PIXEL_HIT, PIXEL_MISS, PIXEL_TIED_IN, PIXEL_TIED_OUT, TopKPixels,
                            topk_pixels)

# HoloViews is not thread-safe: building two plots at once (a session's image panes on a
# server thread, the analysis charts on the event loop or a worker) corrupts them. The
# drawings of both tabs hold this lock; nothing is awaited while holding it.
RENDER_LOCK = threading.RLock()


def drawing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` holding ``RENDER_LOCK``: for views that build HoloViews plots."""
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with RENDER_LOCK:
            return method(*args, **kwargs)
    return locked

HEAT_CMAP = "inferno"
RECON_CMAP = "cividis"
DISPLAY_PERCENTILE = 99.5

# Okabe-Ito hues (hit blue lightened to stand out on the dimmed image)
HIT = "#2E9BFF"
MISS = "#F0E442"
FALSE_ALARM = "#D55E00"
TIED_IN = "#BBDDFF"
TIED_OUT = "#F9CBA8"
MASK_EDGE = "#56B4E9"
GOOD_COLOUR = "#009E73"   # correct prediction (always with a tick and words, never colour alone)
BAD_COLOUR = "#D55E00"    # misclassified (with a cross and words)
WIN_COLOUR = "#0072B2"

PIXEL_LEGEND = (
    ("hit", HIT, "top-K pixel on the defect"),
    ("miss", MISS, "defect pixel not in the top K"),
    ("false alarm", FALSE_ALARM, "top-K pixel outside the defect"),
    ("tied, on defect", TIED_IN, "at the cut-off value: shares the last top-K slots"),
    ("tied, outside", TIED_OUT, "at the cut-off value, outside the defect"),
)


def hex_rgb(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float32)


def display_scale(attribution: np.ndarray, percentile: float = DISPLAY_PERCENTILE) -> tuple[np.ndarray, float]:
    """Map divided by its ``percentile``-th percentile and clipped to [0, 1]; also the divisor.

    A map whose percentile is 0 (mostly zeros) is divided by its maximum instead; an all-zero
    map stays zero (divisor 0).
    """
    a = np.asarray(attribution, dtype=np.float32)
    scale = float(np.percentile(a, percentile)) if a.size else 0.0
    if scale <= 0:
        scale = float(a.max()) if a.size else 0.0
    if scale <= 0:
        return np.zeros_like(a), 0.0
    return np.clip(a / scale, 0.0, 1.0), scale


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` that touch its outside (4-neighbourhood), ``width`` pixels thick."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    for _ in range(max(1, width)):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def _edge_width(size: int) -> int:
    return max(1, round(size / 160))


def grey(image: np.ndarray, brightness: float = 1.0) -> np.ndarray:
    """Luminance of an RGB uint8 image as float RGB (H, W, 3), scaled by ``brightness``."""
    img = np.asarray(image, dtype=np.float32)
    lum = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return np.repeat((lum * brightness)[..., None], 3, axis=2)


def mask_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the defect tinted and outlined (uint8 RGB)."""
    out = np.asarray(image, dtype=np.float32).copy()
    m = np.asarray(mask, dtype=bool)
    edge = hex_rgb(MASK_EDGE)
    out[m] = out[m] * 0.55 + edge * 0.45
    out[outline(m, _edge_width(m.shape[0]))] = (255, 255, 255)
    return out.clip(0, 255).astype(np.uint8)


def topk_rgb(image: np.ndarray, pixels: TopKPixels) -> np.ndarray:
    """Dimmed grey image with hit / miss / false alarm / tied pixels in their colours."""
    out = grey(image, 0.55)
    for code, colour in ((PIXEL_HIT, HIT), (PIXEL_MISS, MISS), (PIXEL_FALSE_ALARM, FALSE_ALARM),
                         (PIXEL_TIED_IN, TIED_IN), (PIXEL_TIED_OUT, TIED_OUT)):
        out[pixels.codes == code] = hex_rgb(colour)
    return out.clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class MethodPicture:
    key: str
    label: str
    heat: np.ndarray       # (H, W) float32 in [0, 1], display-normalised
    scale: float           # the divisor (99.5th percentile of the raw map)
    pixels: TopKPixels
    topk: np.ndarray       # (H, W, 3) uint8


@dataclass(frozen=True)
class Pictures:
    """Everything drawn for one explanation, computed once (off the UI thread)."""

    image: np.ndarray
    mask_overlay: np.ndarray
    reconstruction: np.ndarray
    edge: np.ndarray
    methods: dict[str, MethodPicture]


def make_pictures(ex: Any) -> Pictures:
    """Arrays for every pane of the per-image view from an ``Explanation``."""
    methods = {}
    for key, r in ex.methods.items():
        heat, scale = display_scale(r.map)
        pixels = topk_pixels(r.map, ex.mask)
        methods[key] = MethodPicture(key, r.label, heat, scale, pixels, topk_rgb(ex.image, pixels))
    return Pictures(image=ex.image, mask_overlay=mask_overlay(ex.image, ex.mask),
                    reconstruction=np.asarray(ex.reconstruction, dtype=np.float32),
                    edge=outline(ex.mask, _edge_width(ex.mask.shape[0])), methods=methods)


# ----------------------------------------------------------------------------- HoloViews

def _hv():
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the bokeh backend and its options

    return hv


def _bounds(shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    h, w = shape[:2]
    return (0, 0, w, h)


def _upright(arr: np.ndarray) -> np.ndarray:
    # HoloViews puts row 0 at the top of the bounds; with an inverted y axis (y = row index,
    # growing downwards as in numpy) the array must be flipped to stay upright.
    return np.ascontiguousarray(np.flipud(arr))


# Only the first image shows a toolbar: every pane pans and zooms (drag, scroll) and follows the
# others, so one reset button is enough and the page stays calm.
COMMON = dict(xaxis=None, yaxis=None, invert_yaxis=True, toolbar=None, shared_axes=True, framewise=True,
              active_tools=["pan", "wheel_zoom"], default_tools=["pan", "wheel_zoom", "box_zoom", "reset"])
WITH_TOOLBAR = dict(COMMON, toolbar="above")
NO_TOOLS = dict(xaxis=None, yaxis=None, invert_yaxis=True, shared_axes=True, framewise=True)


def edge_rgba(edge: np.ndarray, colour: str = "#FFFFFF") -> np.ndarray:
    rgba = np.zeros(edge.shape + (4,), dtype=np.uint8)
    rgba[edge, :3] = hex_rgb(colour).astype(np.uint8)
    rgba[edge, 3] = 255
    return rgba


def _rgb(hv, arr: np.ndarray, **opts):
    return hv.RGB(_upright(arr), bounds=_bounds(arr.shape), kdims=["x", "y"]).opts(**opts)


def rgb_element(arr: np.ndarray, title: str, size: int = 260, toolbar: bool = False):
    hv = _hv()
    return _rgb(hv, arr, title=title, frame_width=size, frame_height=size, **(WITH_TOOLBAR if toolbar else COMMON))


def heat_element(image: np.ndarray, heat: np.ndarray, title: str, size: int = 260, edge: np.ndarray | None = None):
    """Grey image under the display-normalised map (inferno, 0..1, with colour bar), defect outlined.

    The layer structure is the same with or without an outline, so a DynamicMap can swap data.
    """
    hv = _hv()
    edge = np.zeros(heat.shape, bool) if edge is None else edge
    base = _rgb(hv, grey(image, 1.0).astype(np.uint8), **NO_TOOLS)
    layer = hv.Image(_upright(heat), bounds=_bounds(heat.shape), kdims=["x", "y"],
                     vdims=[hv.Dimension("attribution", label="map ÷ its 99.5th percentile")]).opts(
        cmap=HEAT_CMAP, clim=(0, 1), alpha=0.72, colorbar=True, tools=["hover"],
        **NO_TOOLS)
    outline_layer = _rgb(hv, edge_rgba(edge), **NO_TOOLS)
    return (base * layer * outline_layer).opts(title=title, frame_width=size, frame_height=size, **{
        k: v for k, v in COMMON.items() if k not in ("xaxis", "yaxis", "invert_yaxis", "shared_axes", "framewise")})


def recon_element(recon: np.ndarray, edge: np.ndarray | None, title: str, size: int = 260):
    hv = _hv()
    edge = np.zeros(recon.shape, bool) if edge is None else edge
    layer = hv.Image(_upright(recon), bounds=_bounds(recon.shape), kdims=["x", "y"],
                     vdims=[hv.Dimension("probability", label="P(defect)")]).opts(
        cmap=RECON_CMAP, clim=(0, 1), colorbar=True, tools=["hover"],
        **NO_TOOLS)
    outline_layer = _rgb(hv, edge_rgba(edge), **NO_TOOLS)
    return (layer * outline_layer).opts(title=title, frame_width=size, frame_height=size, **{
        k: v for k, v in COMMON.items() if k not in ("xaxis", "yaxis", "invert_yaxis", "shared_axes", "framewise")})


class Slot:
    """One image pane whose content is swapped by sending new data, not by re-rendering.

    ``kind`` is "rgb" (data: ``(array, title)``), "heat" (``(image, heat, edge, title)``) or
    "recon" (``(recon, edge, title)``). The DynamicMap keeps its Bokeh figure, so moving to
    the next image only ships the new arrays to the browser.
    """

    def __init__(self, kind: str, data: tuple, size: int = 260, toolbar: bool = False):
        hv = _hv()
        self.kind, self.size, self.toolbar = kind, size, toolbar
        self.pipe = hv.streams.Pipe(data=data)
        self.dmap = hv.DynamicMap(self._element, streams=[self.pipe])

    def _element(self, data: tuple):
        if self.kind == "rgb":
            return rgb_element(data[0], data[1], self.size, self.toolbar)
        if self.kind == "heat":
            return heat_element(data[0], data[1], data[3], self.size, data[2])
        return recon_element(data[0], data[1], data[2], self.size)

    def send(self, data: tuple) -> None:
        self.pipe.send(data)
