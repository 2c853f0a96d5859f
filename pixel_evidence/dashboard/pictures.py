"""Pictures of one explanation: numpy arrays in, display arrays out (no plotting library).

Every attribution map is stretched from its own 1st to its 99.5th percentile and clipped to
0..1 for display only (scores use the raw map): its baseline, however high, is dark and the
pixels the top K takes are bright. Colours are those of :mod:`pixel_evidence.dashboard.colours`.
Colour pictures are RGBA (H, W, 4) uint8, the layout Bokeh draws without a copy, and they
are made off the UI thread, with the explanation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pixel_evidence.dashboard.colours import FALSE_ALARM, HIT, MASK_EDGE, MISS, TIED_IN, TIED_OUT, hex_rgb
from pixel_evidence.engine.explanation import Explanation
from pixel_evidence.results import (PIXEL_FALSE_ALARM, PIXEL_HIT, PIXEL_MISS, PIXEL_TIED_IN, PIXEL_TIED_OUT, TopKPixels,
                                    topk_pixels)

DISPLAY_PERCENTILES = (1.0, 99.5)


def display_scale(attribution: np.ndarray,
                  percentiles: tuple[float, float] = DISPLAY_PERCENTILES) -> tuple[np.ndarray, tuple[float, float]]:
    """Map stretched from its low to its high percentile and clipped to [0, 1]; also (low, high).

    Dividing by a high percentile alone keeps a map's floor: a map on a high baseline (RISE's,
    whose every pixel is an average probability) becomes a uniform bright wash however tight
    its top K is. Stretching from a low percentile drops the floor, so the picture changes
    neither with a constant added to the map nor with a positive factor, like the top K.
    When the percentiles meet (over 98% of the map at one value) the map's extremes serve;
    a constant map stays zero.
    """
    a = np.asarray(attribution, dtype=np.float32)
    if not a.size:
        return np.zeros_like(a), (0.0, 0.0)
    low, high = (float(v) for v in np.percentile(a, percentiles))
    if high <= low:
        low, high = float(a.min()), float(a.max())
        if high <= low:
            return np.zeros_like(a), (low, high)
    return np.clip((a - low) / (high - low), 0.0, 1.0), (low, high)


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


def opaque(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 4) uint8 with full alpha."""
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.asarray(rgb).clip(0, 255)
    out[..., 3] = 255
    return out


def outline_layer(edge: np.ndarray) -> np.ndarray:
    """White where ``edge`` is set, transparent elsewhere (RGBA uint8)."""
    out = np.zeros(edge.shape + (4,), np.uint8)
    out[edge] = 255
    return out


@dataclass(frozen=True)
class MethodPicture:
    key: str
    label: str
    heat: np.ndarray       # (H, W) float32 in [0, 1], display-stretched
    scale: tuple[float, float]  # raw values shown as 0 and 1 (1st and 99.5th percentile)
    pixels: TopKPixels
    topk: np.ndarray       # (H, W, 4) uint8; the dimmed image when there is no top K (K = 0)


@dataclass(frozen=True)
class Pictures:
    """Everything drawn for one explanation, computed once (off the UI thread)."""

    image: np.ndarray          # (H, W, 4) uint8, like every colour picture here
    grey: np.ndarray           # under the heatmaps
    mask_overlay: np.ndarray
    reconstruction: np.ndarray  # (H, W) float32 P(defect); all NaN (drawn blank) without a mask decoder
    reconstruction_title: str
    outline: np.ndarray        # the defect's outline, white on transparent
    methods: dict[str, MethodPicture]


def make_pictures(ex: Explanation) -> Pictures:
    """Arrays for every pane of the per-image view from an ``Explanation``."""
    dim = opaque(grey(ex.image, 0.45).astype(np.uint8))
    methods = {}
    for key, r in ex.methods.items():
        heat, scale = display_scale(r.map)
        pixels = topk_pixels(r.map, ex.mask)
        methods[key] = MethodPicture(key, r.label, heat, scale, pixels,
                                     opaque(topk_rgb(ex.image, pixels)) if ex.rankable else dim)
    return Pictures(image=opaque(ex.image), grey=opaque(grey(ex.image, 1.0).astype(np.uint8)),
                    mask_overlay=opaque(mask_overlay(ex.image, ex.mask)),
                    **_reconstruction(ex),
                    outline=outline_layer(outline(ex.mask, _edge_width(ex.mask.shape[0]))), methods=methods)


def _reconstruction(ex: Explanation) -> dict[str, Any]:
    """The reconstruction pane's picture and title; a model without a mask decoder (a plain
    classifier) has none, and the pane says so rather than showing an empty prediction."""
    if ex.reconstruction is None:
        return {"reconstruction": np.full(ex.mask.shape, np.nan, np.float32),
                "reconstruction_title": "No reconstruction: this model has no mask decoder"}
    return {"reconstruction": np.asarray(ex.reconstruction, dtype=np.float32),
            "reconstruction_title": "Decoder reconstruction"}
