"""Agreement between two methods' maps of one image: do they point at the same pixels?

Pearson correlates the values, Spearman their ranks (robust to the heavy tails of gradient
maps), and the top-fraction IoU compares the sets of the strongest pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from pixel_evidence.metrics.inputs import finite_array
from pixel_evidence.metrics.ties import average_ranks, top_selection

# The measures :func:`agreement` reports for a pair of maps, in this order.
AGREEMENT_STATS = ("pearson", "spearman", "top_iou")

# Randomization check: |Spearman| between the trained model's map and the fully randomized
# model's map at or above this means the map did not depend on the learned weights.
SANITY_PASS_THRESHOLD = 0.5


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = finite_array(a).ravel(), finite_array(b).ravel()
    if x.size != y.size:
        raise ValueError(f"maps of different sizes: {np.shape(a)} and {np.shape(b)}")
    return x, y


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / denom) if denom > 0 else math.nan


def _weighted_iou(wa: np.ndarray, wb: np.ndarray) -> float:
    return float(np.minimum(wa, wb).sum() / np.maximum(wa, wb).sum())


def pearson(a, b) -> float:
    """Pearson correlation of two maps of the same shape; ``nan`` if either is constant."""
    return _correlation(*_pair(a, b))


def spearman(a, b) -> float:
    """Spearman rank correlation (ties share average ranks); robust to the heavy tails of
    gradient maps. ``nan`` if either map is constant."""
    x, y = _pair(a, b)
    return _correlation(average_ranks(x), average_ranks(y))


def top_fraction_membership(a, fraction: float = 0.2) -> np.ndarray:
    """Weight in [0, 1] of each pixel (flattened, shape (N,)) for being among the top ``fraction``.

    ``q = round(fraction * N)`` slots (at least 1); pixels above the q-th value weigh 1,
    pixels tied at it share the remaining slots evenly (the rule of
    :func:`.ties.top_selection`, as for the top-K overlap), so the weights sum to ``q``
    and never depend on pixel order. ``fraction`` in (0, 1], default 0.2.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    x = finite_array(a).ravel()
    return top_selection(x, max(1, int(round(fraction * x.size)))).weights()


def top_fraction_iou(a, b, fraction: float = 0.2) -> float:
    """IoU of the top-``fraction`` pixel sets of two maps (default top 20%).

    With tie weights ``wa``, ``wb`` from :func:`top_fraction_membership` this is
    ``sum(min(wa, wb)) / sum(max(wa, wb))``, the plain set IoU when there are no ties.
    """
    _pair(a, b)
    return _weighted_iou(top_fraction_membership(a, fraction), top_fraction_membership(b, fraction))


def agreement(maps: Mapping[str, np.ndarray], fraction: float = 0.2) -> list[dict[str, float | str]]:
    """Pearson, Spearman and top-``fraction`` IoU for every unordered pair of methods.

    Returns rows ``{"a", "b", "pearson", "spearman", "top_iou"}`` in the order of ``maps``;
    each equals :func:`pearson`, :func:`spearman` and :func:`top_fraction_iou` of the pair.
    Each map is ranked and thresholded once, not once per pair (12 methods: 66 pairs).
    """
    keys = list(maps)
    if not keys:
        return []
    flat = {k: _pair(maps[k], maps[keys[0]])[0] for k in keys}  # also checks that the shapes agree
    ranks = {k: average_ranks(v) for k, v in flat.items()}
    tops = {k: top_fraction_membership(v, fraction) for k, v in flat.items()}
    return [{"a": p, "b": q, "pearson": _correlation(flat[p], flat[q]), "spearman": _correlation(ranks[p], ranks[q]),
             "top_iou": _weighted_iou(tops[p], tops[q])}
            for i, p in enumerate(keys) for q in keys[i + 1:]]
