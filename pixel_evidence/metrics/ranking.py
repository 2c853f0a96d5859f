"""Ranking the methods on one image by their scores (higher is better).

Ties use exact ``==`` on purpose: top-K overlaps are rationals rounded once, so equal
overlaps are bit-identical, while a tolerance could merge genuinely different scores (on
a large defect, one pixel moves TKO by only 1/K).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _is_nan(x: float) -> bool:
    return isinstance(x, float | np.floating) and math.isnan(x)


def rank_methods(scores: Mapping[str, float]) -> dict[str, float]:
    """Rank methods by score, 1 being the highest.

    Tied methods share the mean of the places they occupy (two tied for first both get
    1.5, the next method gets 3). ``nan`` scores get a ``nan`` rank and take no place.
    The result maps each input key to its rank and does not depend on the order of
    ``scores``; an empty mapping gives ``{}``.
    """
    valid = [v for v in scores.values() if not _is_nan(v)]
    ranks = {}
    for name, v in scores.items():
        if _is_nan(v):
            ranks[name] = math.nan
            continue
        higher = sum(1 for w in valid if w > v)
        equal = sum(1 for w in valid if w == v)  # includes v itself
        ranks[name] = higher + (equal + 1) / 2
    return ranks


def win_shares(scores: Mapping[str, float]) -> dict[str, float]:
    """Split one image's "win" among the methods with the best score.

    The unique best method gets 1.0; ``m`` methods tied for first get ``1/m`` each; every
    other method, including one scored ``nan``, gets 0. If every score is ``nan`` the
    image is not rankable and all shares are ``nan``. Shares of a rankable image sum to 1.
    """
    valid = [v for v in scores.values() if not _is_nan(v)]
    if not valid:
        return {name: math.nan for name in scores}
    best = max(valid)
    m = sum(1 for v in valid if v == best)
    return {
        name: (1.0 / m if not _is_nan(v) and v == best else 0.0)
        for name, v in scores.items()
    }
