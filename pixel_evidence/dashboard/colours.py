"""What every colour on the page means, in one place: the image panes, the exports, the
analysis charts and the summary tab all take theirs from here.

- attribution heatmaps: ``inferno`` (dark = low, yellow = high);
- decoder reconstruction: ``cividis``, a probability 0..1;
- top-K picture (Okabe-Ito colours, distinguishable with the common colour-vision
  deficiencies): hit = blue, miss = yellow, false alarm = vermillion; pixels exactly at the
  cut-off value (ties, counted fractionally) in pale versions of the hit / false-alarm colours;
- methods: one colour and one line dash each, fixed by the method's place in the registry, so
  a method looks the same in every view whichever others are on screen: the Okabe-Ito hues
  first, then Paul Tol's (both chosen to stay apart under the common colour-vision
  deficiencies), 14 colours in all; the dash is a second cue beside the colour. The chance
  baseline is grey;
- agreement: correlations from -1 (red) to +1 (blue), the top-share IoU from 0 (white) to 1 (blue).
"""

from __future__ import annotations

import functools

import numpy as np
from bokeh import palettes

HEAT_CMAP = "inferno"
RECON_CMAP = "cividis"

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

# registry order; neighbours in hue (green / dark green, olive / sand, wine / purple) get other dashes
METHOD_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#999933", "#882255",
                  "#332288", "#DDCC77", "#AA4499", "#661100", "#222222", "#117733")
DASHES = ("solid", "dashed", "dotted", "dotdash")
CHANCE_LABEL = "chance (K/N)"
CHANCE_COLOUR = "#9a9a9a"
CURVE_COLOURS = {"train": "#E69F00", "val": "#56B4E9", "test": "#009E73"}


def hex_rgb(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float32)


# The colour maps the page draws with, read from Bokeh, not matplotlib: importing matplotlib
# took 0.4 s of a new page's first view. Inferno and cividis are Bokeh's 256-colour tables;
# RdBu and Blues are ColorBrewer's anchors, which matplotlib interpolates linearly too, so
# they match its maps (and the summary's HoloViews heatmaps) within one unit per channel.
_ANCHORS = {"inferno": palettes.Inferno256, "cividis": palettes.Cividis256,
            "RdBu": palettes.RdBu11[::-1], "Blues": palettes.Blues9[::-1]}


@functools.cache
def palette(cmap: str, n: int = 256) -> tuple[str, ...]:
    """``n`` lower-case hex colours of ``cmap`` (inferno, cividis, RdBu or Blues), low to high."""
    try:
        anchors = _ANCHORS[cmap]
    except KeyError:
        raise ValueError(f"unknown colour map {cmap!r}; known: {', '.join(_ANCHORS)}") from None
    colours = anchors if len(anchors) == n else palettes.interp_palette(anchors, n)
    return tuple(c.lower() for c in colours)


def method_colours(labels: dict[str, str]) -> dict[str, str]:
    """Label -> colour for every method of ``labels`` (key -> label, the whole registry in its
    order: a method's colour is its place there, not among the methods on screen), plus the
    chance baseline. Past the palette's end colours repeat, and the dashes tell them apart."""
    out = {label: METHOD_COLOURS[i % len(METHOD_COLOURS)] for i, label in enumerate(labels.values())}
    out[CHANCE_LABEL] = CHANCE_COLOUR
    return out


def method_dashes(labels: dict[str, str]) -> dict[str, str]:
    """Label -> line dash, fixed by registry place like the colour (the second cue)."""
    return {label: DASHES[i % len(DASHES)] for i, label in enumerate(labels.values())}


def line_styles(labels: dict[str, str]) -> dict[str, tuple[str, str]]:
    """label -> (colour, dash) for every method of ``labels`` (the whole registry)."""
    colours, dashes = method_colours(labels), method_dashes(labels)
    return {label: (colours[label], dashes[label]) for label in labels.values()}


def agreement_scale(stat: str) -> tuple[str, tuple[float, float]]:
    """Colour map and range of an agreement statistic, the same in every view."""
    return ("Blues", (0.0, 1.0)) if stat == "top_iou" else ("RdBu", (-1.0, 1.0))


def agreement_colour(stat: str, value: float) -> str:
    """The colour of ``value`` on ``stat``'s scale (clipped to its range)."""
    cmap, (lo, hi) = agreement_scale(stat)
    colours = palette(cmap)
    return colours[round(min(max((value - lo) / (hi - lo), 0.0), 1.0) * (len(colours) - 1))]
