"""Per-image localisation scores: how well one attribution map points at the defect.

Every score takes an ``attribution`` map and a ground-truth defect ``mask`` of the same
shape (normally ``(H, W)``, but any shape works because both are flattened). The defect
region S is the mask itself when it is boolean, else ``mask > 0.5`` for coverage values
in [0, 1] (:func:`.inputs.defect_region`, applied once as the mask enters each score);
``K = |S|`` is its size in pixels and ``N`` the number of pixels.

Images without a defect (``K == 0``, e.g. "good" samples) have no region to hit, so every
score is ``nan`` for them rather than a misleading 0 or 1; ranking treats ``nan`` as
"this image cannot be ranked".

The top-K scores are exact rationals rounded once to float (see :mod:`.ties`), so two
maps with the same overlap give bit-identical floats and rankings can compare them with
plain ``==``.
"""

from __future__ import annotations

import math

import numpy as np

from pixel_evidence.metrics.inputs import defect_region, flat_map_and_region
from pixel_evidence.metrics.ties import average_ranks, top_selection


def _lift(tko: float, k: int, n: int) -> float:
    # tko / (k / n); shared so lift() and localisation_scores() agree bitwise.
    return tko * n / k if k else math.nan


def top_k_overlap(attribution, mask) -> float:
    """Top-K overlap: share of the defect's K pixels found among the K highest.

    Parameters
    ----------
    attribution : array-like, shape (H, W)
        Attribution map; any finite real values.
    mask : array-like, shape (H, W)
        Ground truth: boolean, or coverage in [0, 1] with S = ``mask > 0.5``.

    Returns
    -------
    float
        ``|TopK(a) ∩ S| / K`` in [0, 1] with fractional credit for ties at the cut-off
        (see :func:`.ties.top_selection`). A constant map scores exactly ``K / N``;
        ``K == N`` scores 1.0; ``K == 0`` gives ``nan``.

    Raises
    ------
    ValueError
        If the shapes differ or an input contains NaN/inf.
    """
    return localisation_scores(attribution, mask)["tko"]


def chance_level(mask) -> float:
    """Expected top-K overlap of a random map: ``K / N``; ``nan`` if K == 0.

    ``mask``: boolean, or coverage in [0, 1] (see :func:`.inputs.defect_region`).
    """
    s = defect_region(mask).ravel()
    k = int(np.count_nonzero(s))
    return k / s.size if k else math.nan


def lift(tko: float, mask) -> float:
    """How many times better than chance a top-K overlap is: ``tko / (K / N)``.

    1.0 means no better than a random map; the maximum is ``N / K``.
    Returns ``nan`` if K == 0 or ``tko`` is ``nan``.
    """
    s = defect_region(mask).ravel()
    return _lift(tko, int(np.count_nonzero(s)), s.size)


def top_k_iou(attribution, mask) -> float:
    """Intersection-over-union of the top-K pixel set with the defect region.

    Both sets have K pixels, so ``IoU = inter / (2K - inter)`` where ``inter`` is the same
    tie-aware intersection used by :func:`top_k_overlap`. This is the form reported in the
    original study. Shapes ``(H, W)``; ``nan`` when K == 0; raises ``ValueError`` like
    :func:`top_k_overlap`.
    """
    return localisation_scores(attribution, mask)["iou"]


def localisation_scores(attribution, mask) -> dict[str, float | int]:
    """All top-K based scores from a single selection pass.

    Returns ``{"tko", "chance", "lift", "iou", "k", "n"}``: the values of
    :func:`top_k_overlap`, :func:`chance_level`, :func:`lift` and :func:`top_k_iou`, plus
    the defect size ``k`` and pixel count ``n`` as ints. Float entries are ``nan`` when
    ``k == 0``. Raises ``ValueError`` on bad input.
    """
    a, s = flat_map_and_region(attribution, mask)
    k, n = int(np.count_nonzero(s)), s.size
    if k == 0:
        nan = math.nan
        return {"tko": nan, "chance": nan, "lift": nan, "iou": nan, "k": k, "n": n}
    inter = top_selection(a, k).overlap(s)
    tko = float(inter / k)
    return {
        "tko": tko,
        "chance": k / n,
        "lift": _lift(tko, k, n),
        "iou": float(inter / (2 * k - inter)),
        "k": k,
        "n": n,
    }


def pointing_game(attribution, mask) -> float:
    """Whether the strongest pixel lands on the defect.

    Returns 1.0 or 0.0 for a unique maximum; if several pixels share the maximum, the
    fraction of them inside S (the hit chance under a random tie-break). ``nan`` when
    K == 0. Shapes ``(H, W)``.
    """
    a, s = flat_map_and_region(attribution, mask)
    if not s.any():
        return math.nan
    at_max = a == a.max()
    return np.count_nonzero(at_max & s) / np.count_nonzero(at_max)


def relevance_mass(attribution, mask) -> float:
    """Share of the total attribution that falls inside the defect.

    ``sum(a * S) / sum(a)`` for a non-negative map of shape ``(H, W)``. Returns ``nan`` if
    K == 0 or the map sums to 0. Raises ``ValueError`` if any value is negative (take
    ``abs`` or clip first; the ratio is not a share otherwise).
    """
    a, s = flat_map_and_region(attribution, mask)
    if np.any(a < 0):
        raise ValueError("relevance_mass requires a non-negative attribution map")
    total = a.sum()
    if not s.any() or total == 0:
        return math.nan
    return float(a[s].sum() / total)


def auroc(attribution, mask) -> float:
    """Area under the ROC curve of the attribution as a detector of S.

    Equals the probability that a random defect pixel scores higher than a random
    background pixel, ties counting one half (Mann-Whitney U from average ranks). Returns
    ``nan`` if K == 0 or K == N, since one of the two classes is then empty. Shapes
    ``(H, W)``.
    """
    a, s = flat_map_and_region(attribution, mask)
    k, n = int(np.count_nonzero(s)), s.size
    if k == 0 or k == n:
        return math.nan
    u = average_ranks(a)[s].sum() - k * (k + 1) / 2.0
    return float(u / (k * (n - k)))
